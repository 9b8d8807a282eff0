package main

// server: an OpAMP server built on opamp-go's server package (server.New + Start), for the
// conformance kit and for opamp-sdk's client to talk to. The opamp-go library only moves
// messages; the small amount of server logic the spec asks for (capabilities, sequence
// tracking with ReportFullState, instance UID assignment, remote config offers, 401) is
// here. Every happening is one JSON object per line on stdout. With -admin, a small HTTP
// API (server_admin.go) lets a test push configs, flags, UIDs and connection settings to
// one agent and refuse the next connections with a status and Retry-After.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"
)

func init() {
	register("server", command{
		summary: "run opamp-go's server (WS and HTTP on one endpoint), printing JSON events",
		run:     runServer,
	})
}

// events writes one JSON object per line to stdout; safe for concurrent use.
type events struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newEvents() *events { return &events{enc: json.NewEncoder(os.Stdout)} }

func (e *events) emit(name string, fields map[string]any) {
	out := map[string]any{"event": name}
	for k, v := range fields {
		out[k] = v
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(out)
}

// agentState is what the server remembers of one agent between messages.
type agentState struct {
	lastSeq         uint64
	capabilities    uint64
	lastConfigHash  []byte
	remoteConfigAck bool
	// config replaces the -config offer for this agent (admin "config").
	config *protobufs.AgentRemoteConfig
	// pending holds what admin commands want in the next answer when they could not be
	// pushed (plain HTTP, or no open WebSocket): merged into the next response.
	pending []pendingPush
}

// pendingPush is one admin command's contribution to a ServerToAgent.
type pendingPush struct {
	cmd  string
	fill func(*protobufs.ServerToAgent)
}

// offeredConfig is the remote config this agent should run: its own, else -config.
func (h *harnessServer) offeredConfig(st *agentState) *protobufs.AgentRemoteConfig {
	if st.config != nil {
		return st.config
	}
	return h.config
}

type harnessServer struct {
	ev        *events
	token     string
	assignUID bool
	config    *protobufs.AgentRemoteConfig

	mu      sync.Mutex
	agents  map[string]*agentState
	conns   map[types.Connection]string // WS connection -> uid of its agent (for push)
	rejects []*rejectRule               // admin "reject": refuse the next connections

	started  time.Time
	nextConn atomic.Int64
}

// ms is the time since the server started, in milliseconds (monotonic clock), put on
// the events tests measure intervals with.
func (h *harnessServer) ms() float64 {
	return float64(time.Since(h.started).Microseconds()) / 1000
}

const harnessServerCapabilities = uint64(protobufs.ServerCapabilities_ServerCapabilities_AcceptsStatus |
	protobufs.ServerCapabilities_ServerCapabilities_OffersRemoteConfig |
	protobufs.ServerCapabilities_ServerCapabilities_AcceptsEffectiveConfig |
	protobufs.ServerCapabilities_ServerCapabilities_OffersConnectionSettings)

func runServer(args []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "host:port to listen on (port 0 picks a free one)")
	path := fs.String("path", "/v1/opamp", "URL path of the OpAMP endpoint")
	token := fs.String("auth-token", "", "require `Authorization: Bearer TOKEN`; others get 401")
	assign := fs.Bool("assign-uid", true, "answer RequestInstanceUid with a new UUIDv7")
	configBody := fs.String("config", "", "remote config to offer to agents with AcceptsRemoteConfig (body of config.yaml)")
	admin := fs.String("admin", "", "also serve the admin API (POST /command, JSON) on this host:port (port 0 picks a free one)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: opamp-interop server [-listen ADDR] [-path P] [-auth-token T] [-config BODY] [-admin ADDR]")
		return 2
	}

	h := &harnessServer{
		ev:        newEvents(),
		token:     *token,
		assignUID: *assign,
		agents:    map[string]*agentState{},
		conns:     map[types.Connection]string{},
		started:   time.Now(),
	}
	if *configBody != "" {
		h.config = remoteConfig(*configBody)
	}

	srv := server.New(nil)
	err := srv.Start(server.StartSettings{
		Settings: server.Settings{
			Callbacks: types.Callbacks{OnConnecting: h.onConnecting},
		},
		ListenEndpoint: *listen,
		ListenPath:     *path,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		return 1
	}
	addr := srv.Addr().String()
	listening := map[string]any{
		"addr":    addr,
		"httpUrl": "http://" + addr + *path,
		"wsUrl":   "ws://" + addr + *path,
	}
	var adminSrv *http.Server
	if *admin != "" {
		var adminURL string
		adminSrv, adminURL, err = h.serveAdmin(*admin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "server: admin:", err)
			_ = srv.Stop(context.Background())
			return 1
		}
		listening["adminUrl"] = adminURL
	}
	h.ev.emit("listening", listening)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if adminSrv != nil {
		_ = adminSrv.Shutdown(ctx)
	}
	if err := srv.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "server: stop:", err)
	}
	h.ev.emit("stopped", nil)
	return 0
}

func remoteConfig(body string) *protobufs.AgentRemoteConfig {
	cfg := &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		"config.yaml": {Body: []byte(body), ContentType: "text/yaml"},
	}}
	sum := sha256.Sum256([]byte("config.yaml\x00text/yaml\x00" + body))
	return &protobufs.AgentRemoteConfig{Config: cfg, ConfigHash: sum[:]}
}

func (h *harnessServer) onConnecting(req *http.Request) types.ConnectionResponse {
	id := h.nextConn.Add(1)
	auth := req.Header.Get("Authorization")
	// opamp-go's own test: a plain-HTTP request carries the protobuf content type.
	transport := "ws"
	if req.Header.Get("Content-Type") == "application/x-protobuf" {
		transport = "http"
	}
	if rule := h.takeReject(auth); rule != nil {
		h.ev.emit("rejected", map[string]any{
			"status": rule.status, "retryAfter": rule.retryAfter, "remote": req.RemoteAddr,
			"transport": transport, "auth": auth, "conn": id, "ms": h.ms(),
		})
		resp := types.ConnectionResponse{Accept: false, HTTPStatusCode: rule.status}
		if rule.retryAfter != "" {
			resp.HTTPResponseHeader = map[string]string{"Retry-After": rule.retryAfter}
		}
		return resp
	}
	if h.token != "" && auth != "Bearer "+h.token {
		h.ev.emit("rejected", map[string]any{
			"status": http.StatusUnauthorized, "remote": req.RemoteAddr,
			"transport": transport, "auth": auth, "conn": id, "ms": h.ms(),
		})
		return types.ConnectionResponse{Accept: false, HTTPStatusCode: http.StatusUnauthorized}
	}
	// Plain HTTP: every request names its agent in OpAMP-Instance-UID.
	uidHeader := req.Header.Get("OpAMP-Instance-UID")
	h.ev.emit("connecting", map[string]any{"conn": id, "transport": transport, "auth": auth, "uidHeader": uidHeader, "ms": h.ms()})
	info := connInfo{id: id, auth: auth, uidHeader: uidHeader}
	return types.ConnectionResponse{
		Accept: true,
		ConnectionCallbacks: types.ConnectionCallbacks{
			OnConnected: func(ctx context.Context, conn types.Connection) {},
			OnMessage: func(ctx context.Context, conn types.Connection, msg *protobufs.AgentToServer) *protobufs.ServerToAgent {
				return h.onMessage(conn, info, msg)
			},
			OnConnectionClose: func(conn types.Connection) {
				h.mu.Lock()
				delete(h.conns, conn)
				h.mu.Unlock()
			},
			OnReadMessageError: func(conn types.Connection, mt int, msg []byte, err error) {
				h.ev.emit("read_error", map[string]any{"error": err.Error(), "bytes": len(msg)})
			},
		},
	}
}

// connInfo is what the server knows of the HTTP request (the WS upgrade or the POST)
// a message came in on.
type connInfo struct {
	id        int64
	auth      string
	uidHeader string
}

func transportOf(conn types.Connection) string {
	// opamp-go has no accessor for the transport (its issue #383); its plain-HTTP
	// connection is the value type server.httpConnection.
	if fmt.Sprintf("%T", conn) == "server.httpConnection" {
		return "http"
	}
	return "ws"
}

func uidString(b []byte) string {
	if u, err := uuid.FromBytes(b); err == nil {
		return u.String()
	}
	return hex.EncodeToString(b)
}

func (h *harnessServer) onMessage(conn types.Connection, info connInfo, msg *protobufs.AgentToServer) *protobufs.ServerToAgent {
	uid := uidString(msg.InstanceUid)
	resp := &protobufs.ServerToAgent{InstanceUid: msg.InstanceUid, Capabilities: harnessServerCapabilities}

	h.mu.Lock()
	defer h.mu.Unlock()

	st, known := h.agents[uid]
	reason := ""
	switch {
	case !known && msg.AgentDescription == nil:
		// spec: a server without state for the agent asks for the full state.
		reason = "unknown agent"
	case known && msg.SequenceNum != st.lastSeq+1:
		// spec: a gap in sequence_num means the server's view may be stale.
		reason = fmt.Sprintf("sequence_num %d after %d", msg.SequenceNum, st.lastSeq)
	}
	if !known {
		st = &agentState{}
		h.agents[uid] = st
	}
	st.lastSeq = msg.SequenceNum
	if msg.Capabilities != 0 {
		st.capabilities = msg.Capabilities
	}
	if reason != "" {
		resp.Flags |= uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)
		h.ev.emit("full_state_requested", map[string]any{"uid": uid, "reason": reason})
	}

	transport := transportOf(conn)
	if transport == "ws" {
		h.conns[conn] = uid
	}
	h.ev.emit("message", map[string]any{
		"uid":          uid,
		"seq":          msg.SequenceNum,
		"transport":    transport,
		"capabilities": msg.Capabilities,
		"description":  msg.AgentDescription != nil,
		"disconnect":   msg.AgentDisconnect != nil,
		"flags":        msg.Flags,
		"effective":    msg.EffectiveConfig != nil,
		"conn":         info.id,
		"auth":         info.auth,
		"uidHeader":    info.uidHeader,
		"ms":           h.ms(),
	})

	if ec := msg.EffectiveConfig; ec != nil {
		files := map[string]string{}
		for name, f := range ec.GetConfigMap().GetConfigMap() {
			files[name] = string(f.Body)
		}
		h.ev.emit("effective_config", map[string]any{"uid": uid, "seq": msg.SequenceNum, "files": files})
	}
	if css := msg.ConnectionSettingsStatus; css != nil {
		h.ev.emit("connection_settings_status", map[string]any{
			"uid": uid, "hash": hex.EncodeToString(css.LastConnectionSettingsHash), "status": css.Status.String(),
			"error": css.ErrorMessage,
		})
	}

	if rcs := msg.RemoteConfigStatus; rcs != nil {
		st.lastConfigHash = rcs.LastRemoteConfigHash
		h.ev.emit("config_status", map[string]any{
			"uid": uid, "hash": hex.EncodeToString(rcs.LastRemoteConfigHash), "status": rcs.Status.String(),
		})
		offered := h.offeredConfig(st)
		if rcs.Status == protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED && offered != nil &&
			hex.EncodeToString(rcs.LastRemoteConfigHash) == hex.EncodeToString(offered.ConfigHash) && !st.remoteConfigAck {
			st.remoteConfigAck = true
			h.ev.emit("config_applied", map[string]any{"uid": uid, "hash": hex.EncodeToString(rcs.LastRemoteConfigHash)})
		}
	}

	if msg.Flags&uint64(protobufs.AgentToServerFlags_AgentToServerFlags_RequestInstanceUid) != 0 && h.assignUID {
		newUID, err := uuid.NewV7()
		if err == nil {
			resp.AgentIdentification = &protobufs.AgentIdentification{NewInstanceUid: newUID[:]}
			// The agent continues under the new UID with the next sequence number.
			h.agents[newUID.String()] = &agentState{lastSeq: msg.SequenceNum, capabilities: st.capabilities}
			h.ev.emit("uid_assigned", map[string]any{"uid": uid, "newUid": newUID.String()})
		}
	}

	// spec: include remote_config while the agent's last_remote_config_hash differs.
	if cfg := h.offeredConfig(st); cfg != nil && st.capabilities&uint64(protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig) != 0 &&
		hex.EncodeToString(st.lastConfigHash) != hex.EncodeToString(cfg.ConfigHash) {
		resp.RemoteConfig = cfg
	}

	// Admin commands that could not be pushed ride on this answer.
	for _, p := range st.pending {
		p.fill(resp)
		h.ev.emit("pushed", map[string]any{"uid": uid, "cmd": p.cmd, "transport": transport})
	}
	st.pending = nil

	if msg.AgentDisconnect != nil {
		// spec: forget the agent's association with the connection.
		delete(h.agents, uid)
		delete(h.conns, conn)
		h.ev.emit("disconnect", map[string]any{"uid": uid, "transport": transport})
	}
	return resp
}
