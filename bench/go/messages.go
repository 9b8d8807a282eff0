package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
)

// The realistic payloads of the issue: an AgentDescription of about 1 KiB, an
// effective config of 8 KiB and a health tree. Shared by load and codec so both
// measure the same bytes.

const configFileName = "collector.yaml"

// agentCapabilities is what every simulated agent announces.
const agentCapabilities = uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
	protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
	protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat)

// newInstanceUID returns a 16-byte UUIDv7.
func newInstanceUID() []byte {
	uid := make([]byte, 16)
	_, _ = rand.Read(uid)
	ms := uint64(time.Now().UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(uid[0:6], ts[2:8])
	uid[6] = (uid[6] & 0x0f) | 0x70
	uid[8] = (uid[8] & 0x3f) | 0x80
	return uid
}

func strKV(k, v string) *protobufs.KeyValue {
	return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
}

func intKV(k string, v int64) *protobufs.KeyValue {
	return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_IntValue{IntValue: v}}}
}

// agentDescription is about 1 KiB once encoded; index makes it unique per agent.
func agentDescription(index int) *protobufs.AgentDescription {
	host := fmt.Sprintf("node-%05d.eu-west-1.compute.internal", index)
	return &protobufs.AgentDescription{
		IdentifyingAttributes: []*protobufs.KeyValue{
			strKV("service.name", "io.opentelemetry.collector"),
			strKV("service.namespace", "observability"),
			strKV("service.version", "0.137.0"),
			strKV("service.instance.id", fmt.Sprintf("0192d1a4-%04x-7c3e-9f1a-%012x", index%0xffff, index)),
		},
		NonIdentifyingAttributes: []*protobufs.KeyValue{
			strKV("os.type", "linux"),
			strKV("os.description", "Ubuntu 24.04.3 LTS (Noble Numbat) 6.8.0-1015-aws"),
			strKV("host.name", host),
			strKV("host.arch", "amd64"),
			strKV("host.id", fmt.Sprintf("i-%017x", index)),
			strKV("cloud.provider", "aws"),
			strKV("cloud.platform", "aws_ec2"),
			strKV("cloud.region", "eu-west-1"),
			strKV("cloud.availability_zone", "eu-west-1b"),
			strKV("k8s.cluster.name", "prod-eu-west-1-observability"),
			strKV("k8s.namespace.name", "otel-system"),
			strKV("k8s.pod.name", fmt.Sprintf("otel-collector-agent-%05d-x7k2p", index)),
			strKV("k8s.node.name", host),
			intKV("process.pid", int64(1000+index%30000)),
			strKV("process.executable.path", "/otelcol-contrib"),
			strKV("process.command_line", "/otelcol-contrib --config=/etc/otelcol-contrib/collector.yaml --feature-gates=-component.UseLocalHostAsDefaultHost"),
			strKV("process.runtime.name", "go"),
			strKV("process.runtime.version", "go1.24.6"),
			strKV("deployment.environment.name", "production"),
			strKV("team", "platform-observability"),
			strKV("cost_center", "cc-4711-observability-platform"),
		},
	}
}

// configBody returns a collector-like YAML document of exactly size bytes;
// version changes its content (v1 is what agents start with, v2 is pushed).
func configBody(version, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# fleet config v%d\nreceivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:4317\n      http:\n        endpoint: 0.0.0.0:4318\n", version)
	b.WriteString("  hostmetrics:\n    collection_interval: 30s\n    scrapers:\n      cpu: {}\n      memory: {}\n      disk: {}\n      filesystem: {}\n      network: {}\n      load: {}\n")
	b.WriteString("processors:\n  batch:\n    send_batch_size: 8192\n    timeout: 5s\n  memory_limiter:\n    check_interval: 1s\n    limit_percentage: 80\n    spike_limit_percentage: 25\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "  attributes/rule%03d:\n    actions:\n      - key: rule.%03d.v%d\n        value: \"drop-if-matches-pattern-%03d\"\n        action: upsert\n", i, i, version, i)
	}
	s := b.String()
	if len(s) > size {
		s = s[:size]
	}
	return []byte(s)
}

func configMap(body []byte) *protobufs.AgentConfigMap {
	return &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		configFileName: {Body: body, ContentType: "text/yaml"},
	}}
}

// configHash is SHA-256 over the one file's name, content type and body.
func configHash(m *protobufs.AgentConfigMap) []byte {
	h := sha256.New()
	for name, f := range m.GetConfigMap() {
		h.Write([]byte(name))
		h.Write([]byte(f.GetContentType()))
		h.Write(f.GetBody())
	}
	return h.Sum(nil)
}

// healthTree is a collector's pipeline health: root -> pipelines -> components.
func healthTree(start time.Time) *protobufs.ComponentHealth {
	startNs := uint64(start.UnixNano())
	nowNs := uint64(time.Now().UnixNano())
	leaf := func(status string) *protobufs.ComponentHealth {
		return &protobufs.ComponentHealth{Healthy: true, StartTimeUnixNano: startNs, Status: status, StatusTimeUnixNano: nowNs}
	}
	pipeline := func(names ...string) *protobufs.ComponentHealth {
		m := map[string]*protobufs.ComponentHealth{}
		for _, n := range names {
			m[n] = leaf("StatusOK")
		}
		return &protobufs.ComponentHealth{Healthy: true, StartTimeUnixNano: startNs, Status: "StatusOK", StatusTimeUnixNano: nowNs, ComponentHealthMap: m}
	}
	return &protobufs.ComponentHealth{
		Healthy: true, StartTimeUnixNano: startNs, Status: "StatusOK", StatusTimeUnixNano: nowNs,
		ComponentHealthMap: map[string]*protobufs.ComponentHealth{
			"pipeline:metrics": pipeline("receiver:otlp", "receiver:hostmetrics", "processor:memory_limiter", "processor:batch", "exporter:otlphttp"),
			"pipeline:traces":  pipeline("receiver:otlp", "processor:memory_limiter", "processor:batch", "exporter:otlphttp"),
			"pipeline:logs":    pipeline("receiver:otlp", "processor:batch", "exporter:otlphttp"),
		},
	}
}

// fullAgentToServer is the agent's complete state as sent on first connect.
func fullAgentToServer(uid []byte, seq uint64, index int, effective []byte, start time.Time) *protobufs.AgentToServer {
	m := &protobufs.AgentToServer{
		InstanceUid:        uid,
		SequenceNum:        seq,
		AgentDescription:   agentDescription(index),
		Capabilities:       agentCapabilities,
		Health:             healthTree(start),
		RemoteConfigStatus: &protobufs.RemoteConfigStatus{Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_UNSET},
	}
	if effective != nil {
		m.EffectiveConfig = &protobufs.EffectiveConfig{ConfigMap: configMap(effective)}
	}
	return m
}

// remoteConfigMessage is a ServerToAgent carrying an 8 KiB remote config.
func remoteConfigMessage(uid []byte, body []byte) *protobufs.ServerToAgent {
	cm := configMap(body)
	return &protobufs.ServerToAgent{
		InstanceUid:  uid,
		Capabilities: serverCapabilities,
		RemoteConfig: &protobufs.AgentRemoteConfig{Config: cm, ConfigHash: configHash(cm)},
	}
}

const serverCapabilities = uint64(protobufs.ServerCapabilities_ServerCapabilities_AcceptsStatus |
	protobufs.ServerCapabilities_ServerCapabilities_OffersRemoteConfig |
	protobufs.ServerCapabilities_ServerCapabilities_AcceptsEffectiveConfig)
