package main

// agent: an OpAMP agent built on opamp-go's client (WebSocket for ws:// and wss://, plain
// HTTP for http:// and https://). It reports a description and health, applies any remote
// config by reporting APPLIED with its hash, and prints JSON events on stdout. SIGTERM or
// SIGINT stops the client (which sends agent_disconnect where opamp-go does) and exits.

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/open-telemetry/opamp-go/client"
	clienttypes "github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"
)

func init() {
	register("agent", command{
		summary: "run opamp-go's client against a server URL (ws:// or http://), printing JSON events",
		run:     runAgent,
	})
}

const harnessAgentCapabilities = protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
	protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat

// agentLogger forwards opamp-go's log lines to stderr when -verbose is set.
type agentLogger struct{ verbose bool }

func (l agentLogger) Debugf(_ context.Context, format string, v ...any) {
	if l.verbose {
		fmt.Fprintf(os.Stderr, "debug: "+format+"\n", v...)
	}
}

func (l agentLogger) Errorf(_ context.Context, format string, v ...any) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", v...)
}

func runAgent(args []string) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	url := fs.String("url", "", "OpAMP server URL: ws(s)://… uses WebSocket, http(s)://… plain HTTP")
	heartbeat := fs.Duration("heartbeat", 0, "heartbeat (and HTTP polling) interval; 0 keeps opamp-go's default of 30s")
	name := fs.String("service-name", "opamp-go-agent", "service.name reported in the agent description")
	token := fs.String("auth-token", "", "send `Authorization: Bearer TOKEN`")
	verbose := fs.Bool("verbose", false, "log opamp-go's debug output to stderr")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *url == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: opamp-interop agent -url URL [-heartbeat D] [-auth-token T]")
		return 2
	}

	ev := newEvents()
	logger := agentLogger{verbose: *verbose}
	var c client.OpAMPClient
	transport := "http"
	if strings.HasPrefix(*url, "ws://") || strings.HasPrefix(*url, "wss://") {
		c = client.NewWebSocket(logger)
		transport = "ws"
	} else {
		c = client.NewHTTP(logger)
	}

	uid, err := uuid.NewV7()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}

	// The effective config is whatever remote config was applied last.
	var mu sync.Mutex
	effective := &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		"local.yaml": {Body: []byte("receivers: {}\n"), ContentType: "text/yaml"},
	}}
	var lastHash []byte

	hostname, _ := os.Hostname()
	if err := c.SetAgentDescription(&protobufs.AgentDescription{
		IdentifyingAttributes: []*protobufs.KeyValue{
			{Key: "service.name", Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: *name}}},
			{Key: "service.instance.id", Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: uid.String()}}},
		},
		NonIdentifyingAttributes: []*protobufs.KeyValue{
			{Key: "host.name", Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: hostname}}},
		},
	}); err != nil {
		fmt.Fprintln(os.Stderr, "agent: description:", err)
		return 1
	}
	if err := c.SetHealth(&protobufs.ComponentHealth{Healthy: true, StartTimeUnixNano: uint64(time.Now().UnixNano()), Status: "running"}); err != nil {
		fmt.Fprintln(os.Stderr, "agent: health:", err)
		return 1
	}
	caps := harnessAgentCapabilities
	if err := c.SetCapabilities(&caps); err != nil {
		fmt.Fprintln(os.Stderr, "agent: capabilities:", err)
		return 1
	}

	settings := clienttypes.StartSettings{
		OpAMPServerURL: *url,
		InstanceUid:    clienttypes.InstanceUid(uid),
		Callbacks: clienttypes.Callbacks{
			OnConnect: func(ctx context.Context) { ev.emit("connected", map[string]any{"transport": transport}) },
			OnConnectFailed: func(ctx context.Context, err error) {
				ev.emit("connect_failed", map[string]any{"error": err.Error()})
			},
			OnError: func(ctx context.Context, e *protobufs.ServerErrorResponse) {
				ev.emit("server_error", map[string]any{"type": e.Type.String(), "message": e.ErrorMessage})
			},
			GetEffectiveConfig: func(ctx context.Context) (*protobufs.EffectiveConfig, error) {
				mu.Lock()
				defer mu.Unlock()
				return &protobufs.EffectiveConfig{ConfigMap: effective}, nil
			},
			OnMessage: func(ctx context.Context, msg *clienttypes.MessageData) {
				if id := msg.AgentIdentification; id != nil {
					if u, err := uuid.FromBytes(id.NewInstanceUid); err == nil {
						ev.emit("uid_changed", map[string]any{"uid": u.String()})
					}
				}
				rc := msg.RemoteConfig
				if rc == nil {
					return
				}
				mu.Lock()
				same := hex.EncodeToString(lastHash) == hex.EncodeToString(rc.ConfigHash)
				if !same {
					lastHash = rc.ConfigHash
					if rc.Config != nil {
						effective = rc.Config
					}
				}
				mu.Unlock()
				if same {
					return
				}
				// Applying is instant here: report APPLIED with the offered hash.
				if err := c.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{
					LastRemoteConfigHash: rc.ConfigHash,
					Status:               protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED,
				}); err != nil {
					ev.emit("error", map[string]any{"error": err.Error()})
				}
				if err := c.UpdateEffectiveConfig(ctx); err != nil {
					ev.emit("error", map[string]any{"error": err.Error()})
				}
				files := []string{}
				if rc.Config != nil {
					for k := range rc.Config.ConfigMap {
						files = append(files, k)
					}
				}
				ev.emit("config_applied", map[string]any{"hash": hex.EncodeToString(rc.ConfigHash), "files": files})
			},
		},
	}
	if *heartbeat > 0 {
		settings.HeartbeatInterval = heartbeat
	}
	if *token != "" {
		settings.Header = map[string][]string{"Authorization": {"Bearer " + *token}}
	}

	if err := c.Start(context.Background(), settings); err != nil {
		fmt.Fprintln(os.Stderr, "agent: start:", err)
		return 1
	}
	ev.emit("started", map[string]any{"uid": uid.String(), "transport": transport, "url": *url})

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "agent: stop:", err)
	}
	ev.emit("stopped", nil)
	return 0
}
