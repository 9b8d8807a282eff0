"""An OpAMP agent on the OpenTelemetry Python OpAMP client (opentelemetry-opamp-client,
HTTP only), for opamp-sdk's conformance kit. It reports a description, applies any remote
config by reporting APPLIED with its hash, prints one JSON event per line on stdout, and on
SIGTERM stops the agent (which sends agent_disconnect) and exits.

usage: python opamp_agent.py URL [HEARTBEAT_SECONDS]
"""

import json
import signal
import sys
import threading

from opentelemetry._opamp.agent import OpAMPAgent
from opentelemetry._opamp.callbacks import OpAMPCallbacks
from opentelemetry._opamp.client import OpAMPClient
from opentelemetry._opamp.proto import opamp_pb2

_lock = threading.Lock()


def emit(event, **fields):
    with _lock:
        print(json.dumps({"event": event, **fields}), flush=True)


class Callbacks(OpAMPCallbacks):
    def __init__(self):
        self.last_hash = None

    def on_connect(self, agent, client):
        emit("connected")

    def on_connect_failed(self, agent, client, error):
        emit("connect_failed", error=str(error))

    def on_error(self, agent, client, error_response):
        emit("server_error", type=int(error_response.type), message=error_response.error_message)

    def on_message(self, agent, client, message):
        rc = message.remote_config
        if rc is None or rc.config_hash == self.last_hash:
            return
        self.last_hash = rc.config_hash
        status = client.update_remote_config_status(
            remote_config_hash=rc.config_hash,
            status=opamp_pb2.RemoteConfigStatuses_APPLIED,
        )
        if status is not None:
            agent.send(client.build_remote_config_status_response_message(status))
        emit("config_applied", hash=rc.config_hash.hex(), files=sorted(rc.config.config_map.keys()))


def main():
    url = sys.argv[1]
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    client = OpAMPClient(
        endpoint=url,
        agent_identifying_attributes={"service.name": "python-opamp-agent"},
        agent_non_identifying_attributes={"os.type": "linux"},
    )
    # The application supplies the effective config (the client declares ReportsEffectiveConfig).
    client.update_effective_config({"local.json": {"receivers": {}}}, "application/json")
    agent = OpAMPAgent(interval=interval, callbacks=Callbacks(), client=client)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    agent.start()
    emit("started", url=url)
    stopped.wait()
    agent.stop(timeout=5)
    emit("stopped")


if __name__ == "__main__":
    main()
