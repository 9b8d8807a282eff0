package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"
)

func init() {
	register("goserver", command{summary: "opamp-go server with opamp-sdk's bench duties; admin HTTP for push/stats", run: runGoServer})
}

// goAgent is what the server holds per agent: its latest full state, merged
// from compressed reports, its sequence number and its live WS connection.
type goAgent struct {
	seq          uint64
	full         bool
	desc         *protobufs.AgentDescription
	capabilities uint64
	health       *protobufs.ComponentHealth
	effective    *protobufs.EffectiveConfig
	remote       *protobufs.RemoteConfigStatus
	conn         types.Connection // nil for HTTP agents and when disconnected
	offered      []byte           // hash of the remote config offered on the current connection
	applied      []byte
}

type goServer struct {
	mu       sync.Mutex
	agents   map[string]*goAgent
	byConn   map[types.Connection]string
	desired  *protobufs.AgentRemoteConfig
	messages atomic.Int64
	applied  atomic.Int64
	wsConns  atomic.Int64
	pushes   atomic.Int64
	pushSeq  int
	cfgBytes int
}

const flagReportFullState = uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)

// onMessage is the server's whole duty: hold the agent's state, track its
// sequence number, ask for the full state when it has a gap, offer the
// desired config, count APPLIED, and answer.
func (s *goServer) onMessage(conn types.Connection, ws bool, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
	s.messages.Add(1)
	key := string(m.GetInstanceUid())
	resp := &protobufs.ServerToAgent{InstanceUid: m.GetInstanceUid(), Capabilities: serverCapabilities}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, known := s.agents[key]
	if !known {
		a = &goAgent{}
		s.agents[key] = a
	}
	if ws && a.conn != conn {
		if a.conn != nil {
			delete(s.byConn, a.conn)
		}
		a.conn = conn
		a.offered = nil
		s.byConn[conn] = key
	}
	hasFull := m.GetAgentDescription() != nil
	if !hasFull && (!known || !a.full || m.GetSequenceNum() != a.seq+1) {
		resp.Flags |= flagReportFullState
		a.full = false
	}
	if hasFull {
		a.full = true
	}
	a.seq = m.GetSequenceNum()
	a.capabilities = m.GetCapabilities()
	if d := m.GetAgentDescription(); d != nil {
		a.desc = d
	}
	if h := m.GetHealth(); h != nil {
		a.health = h
	}
	if e := m.GetEffectiveConfig(); e != nil {
		a.effective = e
	}
	if rs := m.GetRemoteConfigStatus(); rs != nil {
		a.remote = rs
		if s.desired != nil && rs.GetStatus() == protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED &&
			bytes.Equal(rs.GetLastRemoteConfigHash(), s.desired.GetConfigHash()) && !bytes.Equal(a.applied, s.desired.GetConfigHash()) {
			a.applied = s.desired.GetConfigHash()
			s.applied.Add(1)
		}
	}
	if s.desired != nil && a.full && resp.Flags == 0 &&
		!bytes.Equal(a.remote.GetLastRemoteConfigHash(), s.desired.GetConfigHash()) &&
		!bytes.Equal(a.offered, s.desired.GetConfigHash()) {
		resp.RemoteConfig = s.desired
		a.offered = s.desired.GetConfigHash()
	}
	return resp
}

func (s *goServer) onClose(conn types.Connection) {
	s.wsConns.Add(-1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if key, ok := s.byConn[conn]; ok {
		delete(s.byConn, conn)
		if a := s.agents[key]; a != nil && a.conn == conn {
			a.conn = nil
		}
	}
}

// push makes a new 8 KiB config the desired one and sends it at once to every
// WS agent; HTTP agents get it on their next poll.
func (s *goServer) push() map[string]any {
	t0 := time.Now()
	s.mu.Lock()
	s.pushSeq++
	cm := configMap(configBody(100+s.pushSeq, s.cfgBytes))
	s.desired = &protobufs.AgentRemoteConfig{Config: cm, ConfigHash: configHash(cm)}
	type target struct {
		conn types.Connection
		uid  []byte
	}
	targets := make([]target, 0, len(s.byConn))
	for conn, key := range s.byConn {
		a := s.agents[key]
		if a == nil || !a.full {
			continue
		}
		a.offered = s.desired.GetConfigHash()
		targets = append(targets, target{conn, []byte(key)})
	}
	desired := s.desired
	s.mu.Unlock()
	s.pushes.Add(1)

	// A small pool of senders: opamp-go's Send marshals per connection.
	var wg sync.WaitGroup
	var failed atomic.Int64
	work := make(chan target)
	for w := 0; w < 4*runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				msg := &protobufs.ServerToAgent{InstanceUid: t.uid, Capabilities: serverCapabilities, RemoteConfig: desired}
				if err := t.conn.Send(context.Background(), msg); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	for _, t := range targets {
		work <- t
	}
	close(work)
	wg.Wait()
	ev := map[string]any{
		"pushed_ws": len(targets), "failed": failed.Load(), "send_ms": float64(time.Since(t0).Microseconds()) / 1000,
		"hash": hex.EncodeToString(desired.GetConfigHash()), "push_start_unix_ms": unixMs(t0),
	}
	out.emit("pushed", ev)
	return ev
}

func (s *goServer) stats() map[string]any {
	s.mu.Lock()
	agents, full, conns := len(s.agents), 0, len(s.byConn)
	for _, a := range s.agents {
		if a.full {
			full++
		}
	}
	s.mu.Unlock()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return map[string]any{
		"pid": os.Getpid(), "agents": agents, "full_state": full, "ws_agents": conns, "ws_connections": s.wsConns.Load(),
		"messages": s.messages.Load(), "applied": s.applied.Load(), "pushes": s.pushes.Load(),
		"go_heap_inuse": ms.HeapInuse, "go_sys": ms.Sys, "goroutines": runtime.NumGoroutine(),
	}
}

func runGoServer(args []string) int {
	fs := flag.NewFlagSet("goserver", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "OpAMP listen address (loopback)")
	admin := fs.String("admin", "127.0.0.1:0", "admin HTTP listen address: GET /stats, POST /push")
	lifetime := fs.Duration("lifetime", 30*time.Minute, "exit after this long")
	pushAfter := fs.Duration("push-after", 0, "push a config this long after start (0 = only on SIGUSR1 or POST /push)")
	cfgBytes := fs.Int("config-bytes", 8192, "pushed config body size")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, a := range []string{*listen, *admin} {
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			fmt.Fprintf(os.Stderr, "goserver: %q must be a loopback host:port\n", a)
			return 2
		}
	}
	s := &goServer{agents: map[string]*goAgent{}, byConn: map[types.Connection]string{}, cfgBytes: *cfgBytes}
	wsCallbacks := types.ConnectionCallbacks{
		OnConnected: func(context.Context, types.Connection) { s.wsConns.Add(1) },
		OnMessage: func(_ context.Context, c types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			return s.onMessage(c, true, m)
		},
		OnConnectionClose: s.onClose,
	}
	httpCallbacks := types.ConnectionCallbacks{
		OnMessage: func(_ context.Context, c types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
			return s.onMessage(c, false, m)
		},
	}
	srv := server.New(nil)
	err := srv.Start(server.StartSettings{
		ListenEndpoint: *listen,
		ListenPath:     "/v1/opamp",
		Settings: server.Settings{Callbacks: types.Callbacks{
			OnConnecting: func(r *http.Request) types.ConnectionResponse {
				if r.Header.Get("Content-Type") == "application/x-protobuf" {
					return types.ConnectionResponse{Accept: true, ConnectionCallbacks: httpCallbacks}
				}
				return types.ConnectionResponse{Accept: true, ConnectionCallbacks: wsCallbacks}
			},
		}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "goserver:", err)
		return 1
	}
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.stats()) })
	mux.HandleFunc("POST /push", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.push()) })
	adminLn, err := net.Listen("tcp", *admin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goserver: admin:", err)
		return 1
	}
	go func() { _ = http.Serve(adminLn, mux) }()
	out.emit("listening", map[string]any{
		"pid": os.Getpid(), "server": "opamp-go", "addr": srv.Addr().String(), "admin": adminLn.Addr().String(),
		"url_ws": "ws://" + srv.Addr().String() + "/v1/opamp", "url_http": "http://" + srv.Addr().String() + "/v1/opamp",
		"go": runtime.Version(), "gomaxprocs": runtime.GOMAXPROCS(0),
	})

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	var pushTimer <-chan time.Time
	if *pushAfter > 0 {
		pushTimer = time.After(*pushAfter)
	}
	end := time.After(*lifetime)
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				go s.push()
				continue
			}
		case <-pushTimer:
			go s.push()
			continue
		case <-end:
		}
		break
	}
	out.emit("stopping", s.stats())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Stop(ctx)
	return 0
}
