package main

// The golden messages: built with opamp-go's generated types so that the bytes
// come from an implementation we did not write. Between them they set every
// field of every message reachable from AgentToServer and ServerToAgent and use
// every value of every enum that is a field type; golden checks that with
// checkCoverage, so adding a field to the schema without a fixture fails loudly.

import (
	"math"
	"strings"

	pb "github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"
)

// fixture is one golden message; name is unique across both message types
// because the JSON file is named NAME.json.
type fixture struct {
	name string
	msg  proto.Message
}

// Values the TypeScript test asserts directly (keep in sync with golden.test.ts).
var (
	// 16 raw bytes, UUIDv7 layout, with 0x00 and 0xff to exercise base64 in JSON.
	goldenUID = []byte{0x01, 0x93, 0x5b, 0x2e, 0x7c, 0x40, 0x7a, 0x1b, 0x80, 0x00, 0xff, 0xfe, 0x3d, 0x5e, 0x6a, 0x7b}
	// Server-assigned replacement uid.
	goldenNewUID = []byte{0x01, 0x93, 0x5b, 0x2e, 0x7c, 0x41, 0x70, 0x00, 0xbf, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55}
)

const (
	maxU64 = uint64(math.MaxUint64) // 18446744073709551615: far above 2^53
	// 2025-11-22T02:00:00.123456789Z in ns; also above 2^53, and odd so a
	// float64 round trip would visibly change it.
	goldenStartNs  = uint64(1763776800123456789)
	goldenStatusNs = uint64(1763776801987654321)
)

func str(s string) *pb.AnyValue { return &pb.AnyValue{Value: &pb.AnyValue_StringValue{StringValue: s}} }
func kv(k string, v *pb.AnyValue) *pb.KeyValue {
	return &pb.KeyValue{Key: k, Value: v}
}

// allAnyValueKinds uses every AnyValue oneof case, nested arrays and lists, an
// AnyValue with no case set and a KeyValue with no value at all.
func allAnyValueKinds() []*pb.KeyValue {
	return []*pb.KeyValue{
		kv("os.type", str("linux")),
		kv("host.name", str("node-ß-日本-🚀")),
		kv("bool.true", &pb.AnyValue{Value: &pb.AnyValue_BoolValue{BoolValue: true}}),
		kv("int.min", &pb.AnyValue{Value: &pb.AnyValue_IntValue{IntValue: math.MinInt64}}),
		kv("int.max", &pb.AnyValue{Value: &pb.AnyValue_IntValue{IntValue: math.MaxInt64}}),
		kv("double.pi", &pb.AnyValue{Value: &pb.AnyValue_DoubleValue{DoubleValue: math.Pi}}),
		kv("double.inf", &pb.AnyValue{Value: &pb.AnyValue_DoubleValue{DoubleValue: math.Inf(-1)}}),
		kv("bytes", &pb.AnyValue{Value: &pb.AnyValue_BytesValue{BytesValue: []byte{0x00, 0x01, 0xfe, 0xff}}}),
		kv("array", &pb.AnyValue{Value: &pb.AnyValue_ArrayValue{ArrayValue: &pb.ArrayValue{Values: []*pb.AnyValue{
			str("a"),
			{Value: &pb.AnyValue_IntValue{IntValue: -1}},
			{Value: &pb.AnyValue_ArrayValue{ArrayValue: &pb.ArrayValue{}}},
			{}, // an element with no value case
		}}}}),
		kv("kvlist", &pb.AnyValue{Value: &pb.AnyValue_KvlistValue{KvlistValue: &pb.KeyValueList{Values: []*pb.KeyValue{
			kv("inner", str("v")),
			kv("deeper", &pb.AnyValue{Value: &pb.AnyValue_KvlistValue{KvlistValue: &pb.KeyValueList{}}}),
		}}}}),
		kv("empty.value", &pb.AnyValue{}),
		{Key: "no.value"},
	}
}

func healthTree() *pb.ComponentHealth {
	return &pb.ComponentHealth{
		Healthy:            true,
		StartTimeUnixNano:  goldenStartNs,
		Status:             "StatusOK",
		StatusTimeUnixNano: goldenStatusNs,
		ComponentHealthMap: map[string]*pb.ComponentHealth{
			"pipeline:traces": {
				Healthy:            false,
				StartTimeUnixNano:  goldenStartNs,
				LastError:          "exporter otlp: connection refused ✗",
				Status:             "StatusRecoverableError",
				StatusTimeUnixNano: maxU64,
				ComponentHealthMap: map[string]*pb.ComponentHealth{
					"exporter:otlp":  {Healthy: false, LastError: "dial tcp 10.0.0.1:4317: refused", Status: "StatusRecoverableError"},
					"receiver:otlp":  {Healthy: true, Status: "StatusOK", StartTimeUnixNano: 1},
					"processor:noop": {}, // present, all defaults
				},
			},
			"pipeline:metrics": {Healthy: true, Status: "StatusOK"},
		},
	}
}

func configMap(first string) *pb.AgentConfigMap {
	return &pb.AgentConfigMap{ConfigMap: map[string]*pb.AgentConfigFile{
		// "" is the conventional key of a single-file config.
		"": {Body: []byte(first), ContentType: "text/yaml"},
		"extra.json": {
			Body:        []byte(`{"k":"v","n":[1,2,3]}`),
			ContentType: "application/json",
		},
		"binary.bin": {Body: []byte{0x00, 0xff, 0x10, 0x80}},
		"empty":      {},
	}}
}

func headers() *pb.Headers {
	return &pb.Headers{Headers: []*pb.Header{
		{Key: "Authorization", Value: "Bearer s3cr3t"},
		{Key: "X-Dup", Value: "a"}, // repeated key: order must survive
		{Key: "X-Dup", Value: "b"},
		{Key: "X-Empty"},
	}}
}

func tlsSettings() *pb.TLSConnectionSettings {
	return &pb.TLSConnectionSettings{
		CaPemContents:            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		IncludeSystemCaCertsPool: true,
		InsecureSkipVerify:       true,
		MinVersion:               "1.2",
		MaxVersion:               "1.3",
		CipherSuites:             []string{"TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"},
	}
}

func certificate() *pb.TLSCertificate {
	return &pb.TLSCertificate{
		Cert:       []byte("-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n"),
		PrivateKey: []byte("-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"),
		CaCert:     []byte{0x30, 0x82, 0x01, 0x0a, 0x00, 0xff},
	}
}

func proxy() *pb.ProxyConnectionSettings {
	return &pb.ProxyConnectionSettings{
		Url:            "http://proxy.internal:3128",
		ConnectHeaders: &pb.Headers{Headers: []*pb.Header{{Key: "Proxy-Authorization", Value: "Basic dXNlcjpwYXNz"}}},
	}
}

func telemetry(endpoint string) *pb.TelemetryConnectionSettings {
	return &pb.TelemetryConnectionSettings{
		DestinationEndpoint: endpoint,
		Headers:             headers(),
		Certificate:         certificate(),
		Tls:                 tlsSettings(),
		Proxy:               proxy(),
	}
}

func allAgentCapabilities() uint64 {
	var all uint64
	for _, v := range pb.AgentCapabilities_value {
		all |= uint64(v)
	}
	return all
}

func allServerCapabilities() uint64 {
	var all uint64
	for _, v := range pb.ServerCapabilities_value {
		all |= uint64(v)
	}
	return all
}

func agentFull() *pb.AgentToServer {
	return &pb.AgentToServer{
		InstanceUid: goldenUID,
		SequenceNum: maxU64,
		AgentDescription: &pb.AgentDescription{
			IdentifyingAttributes: []*pb.KeyValue{
				kv("service.name", str("io.opentelemetry.collector")),
				kv("service.instance.id", str("01935b2e-7c40-7a1b-8000-fffe3d5e6a7b")),
				kv("service.version", str("0.140.0")),
			},
			NonIdentifyingAttributes: allAnyValueKinds(),
		},
		Capabilities:    allAgentCapabilities(),
		Health:          healthTree(),
		EffectiveConfig: &pb.EffectiveConfig{ConfigMap: configMap("receivers:\n  otlp:\n    protocols: {grpc: {}}\n")},
		RemoteConfigStatus: &pb.RemoteConfigStatus{
			LastRemoteConfigHash: []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01},
			Status:               pb.RemoteConfigStatuses_RemoteConfigStatuses_FAILED,
			ErrorMessage:         "invalid key 'recievers'",
		},
		PackageStatuses: &pb.PackageStatuses{
			Packages: map[string]*pb.PackageStatus{
				"pkg-installed": {
					Name: "pkg-installed", AgentHasVersion: "1.0.0", AgentHasHash: []byte{1, 2, 3},
					ServerOfferedVersion: "1.0.0", ServerOfferedHash: []byte{1, 2, 3},
					Status: pb.PackageStatusEnum_PackageStatusEnum_Installed,
				},
				"pkg-pending": {
					Name: "pkg-pending", ServerOfferedVersion: "2.0.0", ServerOfferedHash: []byte{4},
					Status: pb.PackageStatusEnum_PackageStatusEnum_InstallPending,
				},
				"pkg-installing": {
					Name: "pkg-installing", Status: pb.PackageStatusEnum_PackageStatusEnum_Installing,
				},
				"pkg-failed": {
					Name: "pkg-failed", Status: pb.PackageStatusEnum_PackageStatusEnum_InstallFailed,
					ErrorMessage: "signature mismatch",
				},
				"pkg-downloading": {
					Name: "pkg-downloading", Status: pb.PackageStatusEnum_PackageStatusEnum_Downloading,
					DownloadDetails: &pb.PackageDownloadDetails{DownloadPercent: 42.5, DownloadBytesPerSecond: 1.25e9},
				},
			},
			ServerProvidedAllPackagesHash: []byte{0xaa, 0xbb, 0xcc},
			ErrorMessage:                  "one package failed",
		},
		AgentDisconnect: &pb.AgentDisconnect{},
		Flags:           uint64(pb.AgentToServerFlags_AgentToServerFlags_RequestInstanceUid),
		ConnectionSettingsRequest: &pb.ConnectionSettingsRequest{Opamp: &pb.OpAMPConnectionSettingsRequest{
			CertificateRequest: &pb.CertificateRequest{Csr: []byte("-----BEGIN CERTIFICATE REQUEST-----\ncsr\n-----END CERTIFICATE REQUEST-----\n")},
		}},
		CustomCapabilities: &pb.CustomCapabilities{Capabilities: []string{"io.opentelemetry.pprof", "com.example.echo"}},
		CustomMessage: &pb.CustomMessage{
			Capability: "com.example.echo",
			Type:       "ping",
			Data:       []byte{0x00, 0x7f, 0x80, 0xff},
		},
		AvailableComponents: &pb.AvailableComponents{
			Components: map[string]*pb.ComponentDetails{
				"receivers": {
					Metadata: []*pb.KeyValue{kv("kind", str("receiver"))},
					SubComponentMap: map[string]*pb.ComponentDetails{
						"otlp": {
							Metadata: []*pb.KeyValue{
								kv("code.namespace", str("go.opentelemetry.io/collector/receiver/otlpreceiver")),
								kv("version", str("v0.140.0")),
							},
							SubComponentMap: map[string]*pb.ComponentDetails{
								"grpc": {Metadata: []*pb.KeyValue{kv("port", &pb.AnyValue{Value: &pb.AnyValue_IntValue{IntValue: 4317}})}},
							},
						},
						"hostmetrics": {},
					},
				},
				"processors": {},
			},
			Hash: []byte{0x0c, 0x0f, 0xfe, 0xe0},
		},
		ConnectionSettingsStatus: &pb.ConnectionSettingsStatus{
			LastConnectionSettingsHash: []byte{0x01, 0x02},
			Status:                     pb.ConnectionSettingsStatuses_ConnectionSettingsStatuses_APPLYING,
			ErrorMessage:               "waiting for restart",
		},
	}
}

func serverFull() *pb.ServerToAgent {
	return &pb.ServerToAgent{
		InstanceUid: goldenUID,
		ErrorResponse: &pb.ServerErrorResponse{
			Type:         pb.ServerErrorResponseType_ServerErrorResponseType_Unavailable,
			ErrorMessage: "overloaded, come back later",
			Details:      &pb.ServerErrorResponse_RetryInfo{RetryInfo: &pb.RetryInfo{RetryAfterNanoseconds: 30_000_000_000}},
		},
		RemoteConfig: &pb.AgentRemoteConfig{
			Config:     configMap("exporters:\n  debug: {}\n"),
			ConfigHash: []byte{0x9f, 0x86, 0xd0, 0x81, 0x88, 0x4c},
		},
		ConnectionSettings: &pb.ConnectionSettingsOffers{
			Hash: []byte{0x11, 0x22, 0x33},
			Opamp: &pb.OpAMPConnectionSettings{
				DestinationEndpoint:      "wss://opamp.example.com/v1/opamp",
				Headers:                  headers(),
				Certificate:              certificate(),
				HeartbeatIntervalSeconds: 30,
				Tls:                      tlsSettings(),
				Proxy:                    proxy(),
			},
			OwnMetrics: telemetry("https://otlp.example.com/v1/metrics"),
			OwnTraces:  telemetry("https://otlp.example.com/v1/traces"),
			OwnLogs:    &pb.TelemetryConnectionSettings{}, // present, empty
			OtherConnections: map[string]*pb.OtherConnectionSettings{
				"kafka": {
					DestinationEndpoint: "kafka://broker:9092",
					Headers:             headers(),
					Certificate:         certificate(),
					OtherSettings:       map[string]string{"topic": "otlp_spans", "acks": "all", "empty": ""},
					Tls:                 tlsSettings(),
					Proxy:               proxy(),
				},
				"none": {},
			},
		},
		PackagesAvailable: &pb.PackagesAvailable{
			Packages: map[string]*pb.PackageAvailable{
				"otelcol-contrib": {
					Type:    pb.PackageType_PackageType_TopLevel,
					Version: "0.140.0",
					File: &pb.DownloadableFile{
						DownloadUrl: "https://downloads.example.com/otelcol-contrib_0.140.0_linux_amd64.tar.gz",
						ContentHash: []byte{0xe3, 0xb0, 0xc4, 0x42},
						Signature:   []byte{0x30, 0x45, 0x02, 0x21},
						Headers:     headers(),
					},
					Hash: []byte{0x01},
				},
				"addon-geoip": {
					Type:    pb.PackageType_PackageType_Addon,
					Version: "2025.11",
					File:    &pb.DownloadableFile{DownloadUrl: "https://downloads.example.com/geoip.mmdb"},
					Hash:    []byte{0x02},
				},
			},
			AllPackagesHash: []byte{0x03, 0x04},
		},
		Flags: uint64(pb.ServerToAgentFlags_ServerToAgentFlags_ReportFullState) |
			uint64(pb.ServerToAgentFlags_ServerToAgentFlags_ReportAvailableComponents),
		Capabilities:        allServerCapabilities(),
		AgentIdentification: &pb.AgentIdentification{NewInstanceUid: goldenNewUID},
		Command:             &pb.ServerToAgentCommand{Type: pb.CommandType_CommandType_Restart},
		CustomCapabilities:  &pb.CustomCapabilities{Capabilities: []string{"com.example.echo"}},
		CustomMessage:       &pb.CustomMessage{Capability: "com.example.echo", Type: "pong", Data: []byte("pong ✓")},
	}
}

// fixtures returns every golden message, in a stable order.
func fixtures() []fixture {
	fs := []fixture{
		{"agent_full", agentFull()},
		// Only scalars: every sub-message is absent (left out = unchanged).
		{"agent_minimal", &pb.AgentToServer{
			InstanceUid:  goldenUID,
			SequenceNum:  1,
			Capabilities: uint64(pb.AgentCapabilities_AgentCapabilities_ReportsStatus),
		}},
		// Every sub-message present but empty: must stay present, not become absent.
		{"agent_empty_submessages", &pb.AgentToServer{
			InstanceUid:               goldenUID,
			AgentDescription:          &pb.AgentDescription{},
			Health:                    &pb.ComponentHealth{},
			EffectiveConfig:           &pb.EffectiveConfig{},
			RemoteConfigStatus:        &pb.RemoteConfigStatus{},
			PackageStatuses:           &pb.PackageStatuses{},
			AgentDisconnect:           &pb.AgentDisconnect{},
			ConnectionSettingsRequest: &pb.ConnectionSettingsRequest{},
			CustomCapabilities:        &pb.CustomCapabilities{},
			CustomMessage:             &pb.CustomMessage{},
			AvailableComponents:       &pb.AvailableComponents{},
			ConnectionSettingsStatus:  &pb.ConnectionSettingsStatus{},
		}},
		// The goodbye message: agent_disconnect is an empty message whose presence is the signal.
		{"agent_disconnect", &pb.AgentToServer{
			InstanceUid:     goldenUID,
			SequenceNum:     7,
			AgentDisconnect: &pb.AgentDisconnect{},
		}},
		// Enum values this schema does not define must survive (proto3 enums are open).
		{"agent_open_enum", &pb.AgentToServer{
			InstanceUid:        goldenUID,
			RemoteConfigStatus: &pb.RemoteConfigStatus{Status: pb.RemoteConfigStatuses(99)},
			PackageStatuses: &pb.PackageStatuses{Packages: map[string]*pb.PackageStatus{
				"future": {Name: "future", Status: pb.PackageStatusEnum(42)},
			}},
			Capabilities: maxU64, // bits beyond the known capabilities
			Flags:        maxU64,
		}},
		{"agent_empty", &pb.AgentToServer{}},

		{"server_full", serverFull()},
		{"server_error_retry", &pb.ServerToAgent{
			InstanceUid: goldenUID,
			ErrorResponse: &pb.ServerErrorResponse{
				Type:         pb.ServerErrorResponseType_ServerErrorResponseType_Unavailable,
				ErrorMessage: "retry later",
				Details:      &pb.ServerErrorResponse_RetryInfo{RetryInfo: &pb.RetryInfo{RetryAfterNanoseconds: maxU64}},
			},
		}},
		// The oneof is unset.
		{"server_error_no_details", &pb.ServerToAgent{
			InstanceUid: goldenUID,
			ErrorResponse: &pb.ServerErrorResponse{
				Type:         pb.ServerErrorResponseType_ServerErrorResponseType_BadRequest,
				ErrorMessage: "malformed message",
			},
		}},
		// The oneof is set to an empty RetryInfo (present, zero delay), type is the zero value.
		{"server_error_retry_empty", &pb.ServerToAgent{
			InstanceUid: goldenUID,
			ErrorResponse: &pb.ServerErrorResponse{
				Type:    pb.ServerErrorResponseType_ServerErrorResponseType_Unknown,
				Details: &pb.ServerErrorResponse_RetryInfo{RetryInfo: &pb.RetryInfo{}},
			},
		}},
		{"server_empty_submessages", &pb.ServerToAgent{
			InstanceUid:         goldenUID,
			ErrorResponse:       &pb.ServerErrorResponse{},
			RemoteConfig:        &pb.AgentRemoteConfig{},
			ConnectionSettings:  &pb.ConnectionSettingsOffers{},
			PackagesAvailable:   &pb.PackagesAvailable{},
			AgentIdentification: &pb.AgentIdentification{},
			Command:             &pb.ServerToAgentCommand{},
			CustomCapabilities:  &pb.CustomCapabilities{},
			CustomMessage:       &pb.CustomMessage{},
		}},
		// Restart is enum value 0, so the command is an empty message on the wire.
		{"server_restart", &pb.ServerToAgent{
			InstanceUid: goldenUID,
			Command:     &pb.ServerToAgentCommand{Type: pb.CommandType_CommandType_Restart},
		}},
		{"server_uint64_max", &pb.ServerToAgent{
			InstanceUid:  goldenUID,
			Flags:        maxU64,
			Capabilities: maxU64,
			ConnectionSettings: &pb.ConnectionSettingsOffers{
				Opamp: &pb.OpAMPConnectionSettings{HeartbeatIntervalSeconds: maxU64},
			},
		}},
		{"server_empty", &pb.ServerToAgent{}},
	}
	// One small message per status value, so every value of both status enums
	// (including the zero value UNSET) is on record.
	for v := int32(0); v <= 3; v++ {
		fs = append(fs, fixture{
			name: "agent_status_" + strings.ToLower(strings.TrimPrefix(pb.RemoteConfigStatuses_name[v], "RemoteConfigStatuses_")),
			msg: &pb.AgentToServer{
				InstanceUid:        goldenUID,
				SequenceNum:        uint64(v) + 2,
				RemoteConfigStatus: &pb.RemoteConfigStatus{LastRemoteConfigHash: []byte{byte(v)}, Status: pb.RemoteConfigStatuses(v)},
				ConnectionSettingsStatus: &pb.ConnectionSettingsStatus{
					LastConnectionSettingsHash: []byte{byte(v)},
					Status:                     pb.ConnectionSettingsStatuses(v),
				},
			},
		})
	}
	return fs
}
