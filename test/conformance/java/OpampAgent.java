// An OpAMP agent on the OpenTelemetry Java OpAMP client
// (io.opentelemetry.contrib:opentelemetry-opamp-client), for opamp-sdk's conformance kit.
// WebSocket for ws:// URLs, plain HTTP for http:// URLs. It reports a description, applies
// any remote config by reporting APPLIED with its hash, prints one JSON event per line on
// stdout, and on SIGTERM closes the client (which sends agent_disconnect) and exits.
//
// usage: java -cp <classpath from pom.xml> OpampAgent.java URL [POLL_SECONDS]

import io.opentelemetry.opamp.client.OpampClient;
import io.opentelemetry.opamp.client.internal.connectivity.http.OkHttpSender;
import io.opentelemetry.opamp.client.internal.connectivity.websocket.OkHttpWebSocket;
import io.opentelemetry.opamp.client.internal.request.delay.PeriodicDelay;
import io.opentelemetry.opamp.client.internal.request.service.HttpRequestService;
import io.opentelemetry.opamp.client.internal.request.service.WebSocketRequestService;
import io.opentelemetry.opamp.client.internal.response.MessageData;
import io.opentelemetry.opamp.client.request.service.RequestService;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import opamp.proto.AgentRemoteConfig;
import opamp.proto.RemoteConfigStatus;
import opamp.proto.RemoteConfigStatuses;
import opamp.proto.ServerErrorResponse;

public final class OpampAgent {
  private static synchronized void emit(String json) {
    System.out.println(json);
    System.out.flush();
  }

  private static String quote(String s) {
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
  }

  public static void main(String[] args) throws Exception {
    String url = args[0];
    long pollSeconds = args.length > 1 ? Long.parseLong(args[1]) : 30;
    boolean ws = url.startsWith("ws://") || url.startsWith("wss://");
    RequestService service =
        ws
            ? WebSocketRequestService.create(OkHttpWebSocket.create(url))
            : HttpRequestService.create(
                OkHttpSender.create(url),
                PeriodicDelay.ofFixedDuration(Duration.ofSeconds(pollSeconds)),
                HttpRequestService.DEFAULT_DELAY_BETWEEN_RETRIES);
    final String[] lastHash = {""};
    OpampClient client =
        OpampClient.builder()
            .setRequestService(service)
            .putIdentifyingAttribute("service.name", "java-opamp-agent")
            .putNonIdentifyingAttribute("os.type", "linux")
            .enableRemoteConfig()
            .build(
                new OpampClient.Callbacks() {
                  @Override
                  public void onConnect(OpampClient c) {
                    emit("{\"event\":\"connected\"}");
                  }

                  @Override
                  public void onConnectFailed(OpampClient c, Throwable t) {
                    emit("{\"event\":\"connect_failed\",\"error\":" + quote(String.valueOf(t)) + "}");
                  }

                  @Override
                  public void onErrorResponse(OpampClient c, ServerErrorResponse e) {
                    emit("{\"event\":\"server_error\",\"message\":" + quote(e.error_message) + "}");
                  }

                  @Override
                  public void onMessage(OpampClient c, MessageData data) {
                    AgentRemoteConfig rc = data.getRemoteConfig();
                    if (rc == null || rc.config_hash.hex().equals(lastHash[0])) return;
                    lastHash[0] = rc.config_hash.hex();
                    c.setRemoteConfigStatus(
                        new RemoteConfigStatus.Builder()
                            .last_remote_config_hash(rc.config_hash)
                            .status(RemoteConfigStatuses.RemoteConfigStatuses_APPLIED)
                            .build());
                    emit("{\"event\":\"config_applied\",\"hash\":" + quote(lastHash[0]) + "}");
                  }
                });
    emit("{\"event\":\"started\",\"url\":" + quote(url) + "}");
    CountDownLatch stop = new CountDownLatch(1);
    sun.misc.Signal.handle(new sun.misc.Signal("TERM"), s -> stop.countDown());
    sun.misc.Signal.handle(new sun.misc.Signal("INT"), s -> stop.countDown());
    stop.await();
    client.close();
    emit("{\"event\":\"stopped\"}");
    System.exit(0);
  }
}
