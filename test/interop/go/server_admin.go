package main

// The server subcommand's admin API (-admin ADDR): one endpoint, POST /command, with a
// JSON object {"cmd": NAME, ...}. Commands aimed at one agent ("uid") are pushed at once
// over its open WebSocket (opamp-go's Connection.Send) or, without one (plain HTTP), put
// on the agent's next answer. Every command answers {"ok": true, ...} or an HTTP error
// with {"error": "..."}; a push prints a "pushed" event when it leaves.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"

	"github.com/google/uuid"
	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server/types"
	"google.golang.org/protobuf/proto"
)

// adminCommand is the body of POST /command; which fields count depends on cmd.
type adminCommand struct {
	Cmd string `json:"cmd"`
	// UID of the agent (as printed in events) for config, full-state, assign-uid,
	// connection-settings and disconnect.
	UID string `json:"uid"`
	// config: the body of config.yaml to offer.
	Body string `json:"body"`
	// connection-settings: the OpAMP settings to offer. Headers replace the agent's
	// whole set when given; heartbeatSeconds is left out of the offer when absent.
	Endpoint         string            `json:"endpoint"`
	Headers          map[string]string `json:"headers"`
	HeartbeatSeconds *uint64           `json:"heartbeatSeconds"`
	// reject: refuse the next Count connections (WS upgrades or HTTP requests) whose
	// Authorization header equals Auth (any, when empty) with Status (default 503) and,
	// when given, a Retry-After header.
	Count      int    `json:"count"`
	Status     int    `json:"status"`
	RetryAfter string `json:"retryAfter"`
	Auth       string `json:"auth"`
}

// rejectRule is an armed admin "reject".
type rejectRule struct {
	remaining  int
	status     int
	retryAfter string
	auth       string
}

// takeReject consumes one refusal that applies to a connection with this Authorization.
func (h *harnessServer) takeReject(auth string) *rejectRule {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, r := range h.rejects {
		if r.auth != "" && r.auth != auth {
			continue
		}
		r.remaining--
		if r.remaining <= 0 {
			h.rejects = append(h.rejects[:i], h.rejects[i+1:]...)
		}
		return r
	}
	return nil
}

// serveAdmin starts the admin API and returns it with its base URL.
func (h *harnessServer) serveAdmin(addr string) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /command", h.handleCommand)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String(), nil
}

type adminError struct {
	status int
	msg    string
}

func (e *adminError) Error() string { return e.msg }

func (h *harnessServer) handleCommand(w http.ResponseWriter, req *http.Request) {
	var cmd adminCommand
	dec := json.NewDecoder(req.Body)
	dec.DisallowUnknownFields()
	var result map[string]any
	err := dec.Decode(&cmd)
	if err != nil {
		err = &adminError{http.StatusBadRequest, "bad command: " + err.Error()}
	} else {
		result, err = h.runCommand(cmd)
	}
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusInternalServerError
		var ae *adminError
		if errors.As(err, &ae) {
			status = ae.status
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error()})
		return
	}
	if result == nil {
		result = map[string]any{}
	}
	result["ok"] = true
	_ = json.NewEncoder(w).Encode(result)
}

func (h *harnessServer) runCommand(cmd adminCommand) (map[string]any, error) {
	switch cmd.Cmd {
	case "reject":
		if cmd.Count <= 0 {
			return nil, &adminError{http.StatusBadRequest, "reject: count must be positive"}
		}
		status := cmd.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		h.mu.Lock()
		h.rejects = append(h.rejects, &rejectRule{remaining: cmd.Count, status: status, retryAfter: cmd.RetryAfter, auth: cmd.Auth})
		h.mu.Unlock()
		return nil, nil

	case "config":
		cfg := remoteConfig(cmd.Body)
		err := h.push(cmd, func(st *agentState) func(*protobufs.ServerToAgent) {
			st.config = cfg
			st.remoteConfigAck = false
			return func(m *protobufs.ServerToAgent) { m.RemoteConfig = cfg }
		})
		return map[string]any{"hash": hex.EncodeToString(cfg.ConfigHash)}, err

	case "full-state":
		return nil, h.push(cmd, func(*agentState) func(*protobufs.ServerToAgent) {
			return func(m *protobufs.ServerToAgent) {
				m.Flags |= uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)
			}
		})

	case "assign-uid":
		newUID, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		err = h.push(cmd, func(st *agentState) func(*protobufs.ServerToAgent) {
			// The agent goes on under the new UID with the next sequence number: both
			// UIDs share its state, so no gap is seen whichever arrives first.
			h.agents[newUID.String()] = st
			h.ev.emit("uid_assigned", map[string]any{"uid": cmd.UID, "newUid": newUID.String()})
			return func(m *protobufs.ServerToAgent) {
				m.AgentIdentification = &protobufs.AgentIdentification{NewInstanceUid: newUID[:]}
			}
		})
		return map[string]any{"newUid": newUID.String()}, err

	case "connection-settings":
		offers, err := connectionSettingsOffers(cmd)
		if err != nil {
			return nil, err
		}
		err = h.push(cmd, func(*agentState) func(*protobufs.ServerToAgent) {
			return func(m *protobufs.ServerToAgent) { m.ConnectionSettings = offers }
		})
		return map[string]any{"hash": hex.EncodeToString(offers.Hash)}, err

	case "disconnect":
		h.mu.Lock()
		var conns []types.Connection
		for c, uid := range h.conns {
			if uid == cmd.UID {
				conns = append(conns, c)
			}
		}
		h.mu.Unlock()
		if len(conns) == 0 {
			return nil, &adminError{http.StatusConflict, "disconnect: no open WebSocket for " + cmd.UID}
		}
		for _, c := range conns {
			_ = c.Disconnect()
		}
		return map[string]any{"closed": len(conns)}, nil
	}
	return nil, &adminError{http.StatusBadRequest, fmt.Sprintf("unknown cmd %q", cmd.Cmd)}
}

// connectionSettingsOffers builds an OpAMP connection settings offer; its hash is the
// SHA-256 of the deterministic encoding of the OpAMP settings.
func connectionSettingsOffers(cmd adminCommand) (*protobufs.ConnectionSettingsOffers, error) {
	settings := &protobufs.OpAMPConnectionSettings{DestinationEndpoint: cmd.Endpoint}
	if cmd.Headers != nil {
		names := make([]string, 0, len(cmd.Headers))
		for name := range cmd.Headers {
			names = append(names, name)
		}
		sort.Strings(names)
		settings.Headers = &protobufs.Headers{}
		for _, name := range names {
			settings.Headers.Headers = append(settings.Headers.Headers, &protobufs.Header{Key: name, Value: cmd.Headers[name]})
		}
	}
	if cmd.HeartbeatSeconds != nil {
		settings.HeartbeatIntervalSeconds = *cmd.HeartbeatSeconds
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(settings)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &protobufs.ConnectionSettingsOffers{Hash: sum[:], Opamp: settings}, nil
}

// push applies a command to an agent's state (prepare runs under the lock and returns
// what to put in a ServerToAgent), then sends it over the agent's open WebSocket, or
// keeps it for the agent's next answer when it has none.
func (h *harnessServer) push(cmd adminCommand, prepare func(*agentState) func(*protobufs.ServerToAgent)) error {
	uidBytes, err := uuid.Parse(cmd.UID)
	if err != nil {
		return &adminError{http.StatusBadRequest, cmd.Cmd + ": uid: " + err.Error()}
	}
	h.mu.Lock()
	st, ok := h.agents[cmd.UID]
	if !ok {
		h.mu.Unlock()
		return &adminError{http.StatusNotFound, cmd.Cmd + ": no agent " + cmd.UID}
	}
	fill := prepare(st)
	var conn types.Connection
	for c, uid := range h.conns {
		if uid == cmd.UID {
			conn = c
			break
		}
	}
	if conn == nil {
		st.pending = append(st.pending, pendingPush{cmd: cmd.Cmd, fill: fill})
		h.mu.Unlock()
		return nil
	}
	h.mu.Unlock()

	msg := &protobufs.ServerToAgent{InstanceUid: uidBytes[:], Capabilities: harnessServerCapabilities}
	fill(msg)
	if err := conn.Send(context.Background(), msg); err != nil {
		return fmt.Errorf("%s: send: %w", cmd.Cmd, err)
	}
	h.ev.emit("pushed", map[string]any{"uid": cmd.UID, "cmd": cmd.Cmd, "transport": "ws"})
	return nil
}
