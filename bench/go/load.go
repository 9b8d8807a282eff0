package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"
)

func init() {
	register("load", command{summary: "simulate N agents (ws or http) against --url; JSON progress on stdout", run: runLoad})
}

// loadConfig holds the resolved flags of `opamp-bench load`.
type loadConfig struct {
	url             string
	agents          int
	indexBase       int
	transport       string
	sourceAddrs     []net.IP
	heartbeat       time.Duration
	pollInterval    time.Duration
	duration        time.Duration
	progress        time.Duration
	dialConcurrency int
	effective       bool
	configBytes     int
	stdinStop       bool
}

// loadStats are the process-wide counters printed in progress lines.
type loadStats struct {
	connected, synced, applied                 atomic.Int64
	sent, received, hbSent, hbSkipped, errs    atomic.Int64
	fullStateRequests                          atomic.Int64
	dialFailures, reconnects, httpRequests     atomic.Int64
	syncRound, appliedRound                    atomic.Int64
	lastSyncUnixUs, lastAppliedUnixUs          atomic.Int64
	firstConfigUnixUs                          atomic.Int64
	syncLatency, hbRTT, httpPoll, applyLatency *histogram
}

type loadRun struct {
	cfg      loadConfig
	stats    loadStats
	start    time.Time
	dialSem  chan struct{}
	effBody  []byte
	dialers  []*websocket.Dialer
	clients  []*http.Client
	stopping atomic.Bool
}

func parseSourceAddrs(s string) ([]net.IP, error) {
	var ips []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		ip := net.ParseIP(part)
		if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("source address %q is not an IPv4 loopback address (127.0.0.0/8)", part)
		}
		ips = append(ips, ip)
	}
	if len(ips) == 0 {
		return nil, errors.New("no source addresses")
	}
	return ips, nil
}

// checkLoopbackURL refuses any target outside 127.0.0.0/8: the harness never
// sends traffic off the machine.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return fmt.Errorf("url host %q must be an IPv4 address in 127.0.0.0/8", u.Hostname())
	}
	return nil
}

func runLoad(args []string) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var cfg loadConfig
	var srcs string
	fs.StringVar(&cfg.url, "url", "ws://127.0.0.1:4320/v1/opamp", "OpAMP endpoint (ws://, http://; loopback only)")
	fs.IntVar(&cfg.agents, "agents", 100, "number of simulated agents in this process")
	fs.IntVar(&cfg.indexBase, "index-base", 0, "index of this process's first agent (keeps descriptions unique across processes)")
	fs.StringVar(&cfg.transport, "transport", "ws", "ws or http")
	fs.StringVar(&srcs, "source-addrs", "127.0.0.1", "comma-separated 127.0.0.x addresses to bind when dialing")
	fs.DurationVar(&cfg.heartbeat, "heartbeat", 30*time.Second, "WS heartbeat interval (0 = none)")
	fs.DurationVar(&cfg.pollInterval, "poll-interval", -1, "HTTP poll interval; 0 = back-to-back; default = --heartbeat")
	fs.DurationVar(&cfg.duration, "duration", 60*time.Second, "hard stop after this long")
	fs.DurationVar(&cfg.progress, "progress", time.Second, "progress line interval")
	fs.IntVar(&cfg.dialConcurrency, "dial-concurrency", 64, "concurrent dials / first requests")
	fs.BoolVar(&cfg.effective, "effective-config", true, "report an effective config (ReportsEffectiveConfig)")
	fs.IntVar(&cfg.configBytes, "config-bytes", 8192, "size of the effective config body")
	fs.BoolVar(&cfg.stdinStop, "stop-on-stdin-eof", false, "stop when stdin reaches EOF (set by the runner)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "load: unexpected argument %q (bool flags take --flag=value)\n", fs.Arg(0))
		return 2
	}
	var err error
	if cfg.sourceAddrs, err = parseSourceAddrs(srcs); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 2
	}
	if err = checkLoopbackURL(cfg.url); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 2
	}
	if cfg.transport != "ws" && cfg.transport != "http" {
		fmt.Fprintln(os.Stderr, "load: --transport must be ws or http")
		return 2
	}
	if cfg.agents < 1 || cfg.duration <= 0 || cfg.dialConcurrency < 1 {
		fmt.Fprintln(os.Stderr, "load: --agents, --duration and --dial-concurrency must be positive")
		return 2
	}
	if cfg.pollInterval < 0 {
		cfg.pollInterval = cfg.heartbeat
	}
	r := newLoadRun(cfg)
	return r.run()
}

func newLoadRun(cfg loadConfig) *loadRun {
	r := &loadRun{cfg: cfg, dialSem: make(chan struct{}, cfg.dialConcurrency)}
	r.stats.syncLatency = newHistogram()
	r.stats.hbRTT = newHistogram()
	r.stats.httpPoll = newHistogram()
	r.stats.applyLatency = newHistogram()
	if cfg.effective {
		r.effBody = configBody(1, cfg.configBytes)
	}
	for _, ip := range cfg.sourceAddrs {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
		r.dialers = append(r.dialers, &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: 30 * time.Second,
			ReadBufferSize:   4096,
			WriteBufferSize:  4096,
		})
		perAddr := cfg.agents/len(cfg.sourceAddrs) + 1
		r.clients = append(r.clients, &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				DialContext:         nd.DialContext,
				MaxIdleConnsPerHost: perAddr,
				MaxIdleConns:        perAddr,
				IdleConnTimeout:     120 * time.Second,
				DisableCompression:  true,
			},
		})
	}
	return r
}

func (r *loadRun) run() int {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.duration)
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
		}
	}()
	if r.cfg.stdinStop {
		// The runner closes our stdin when it is done or dies: stop then too.
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}

	r.start = time.Now()
	out.emit("start", map[string]any{"pid": os.Getpid(), "agents": r.cfg.agents, "transport": r.cfg.transport, "url": r.cfg.url})
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.agents; i++ {
		a := &simAgent{run: r, index: r.cfg.indexBase + i, slot: i, uid: newInstanceUID()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.cfg.transport == "ws" {
				a.runWS(ctx)
			} else {
				a.runHTTP(ctx)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(r.cfg.progress)
	defer tick.Stop()
loop:
	for {
		select {
		case <-tick.C:
			r.emitProgress("progress")
		case <-ctx.Done():
			break loop
		}
	}
	r.stopping.Store(true)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	r.emitProgress("summary")
	return 0
}

func (r *loadRun) emitProgress(ev string) {
	s := &r.stats
	f := map[string]any{
		"pid": os.Getpid(), "t_ms": float64(time.Since(r.start).Microseconds()) / 1000, "agents": r.cfg.agents,
		"connected": s.connected.Load(), "synced": s.synced.Load(), "applied": s.applied.Load(),
		"sent": s.sent.Load(), "received": s.received.Load(), "hb_sent": s.hbSent.Load(), "hb_skipped": s.hbSkipped.Load(),
		"full_state_requests": s.fullStateRequests.Load(),
		"errors":              s.errs.Load(), "dial_failures": s.dialFailures.Load(), "reconnects": s.reconnects.Load(),
		"http_requests": s.httpRequests.Load(), "sync_round": s.syncRound.Load(),
	}
	if ev == "summary" {
		f["sync_latency"] = s.syncLatency.snapshot()
		f["hb_rtt"] = s.hbRTT.snapshot()
		f["http_poll"] = s.httpPoll.snapshot()
		f["apply_latency"] = s.applyLatency.snapshot()
		f["last_sync_unix_ms"] = float64(s.lastSyncUnixUs.Load()) / 1000
		f["last_applied_unix_ms"] = float64(s.lastAppliedUnixUs.Load()) / 1000
		f["first_config_unix_ms"] = float64(s.firstConfigUnixUs.Load()) / 1000
	}
	out.emit(ev, f)
}

func (r *loadRun) markSynced(since time.Time) {
	now := time.Now()
	r.stats.syncLatency.record(now.Sub(since))
	r.stats.lastSyncUnixUs.Store(now.UnixMicro())
	if r.stats.synced.Add(1) == int64(r.cfg.agents) {
		round := r.stats.syncRound.Add(1)
		out.emit("all_synced", map[string]any{"pid": os.Getpid(), "round": round, "t_ms": float64(time.Since(r.start).Microseconds()) / 1000})
	}
}

func (r *loadRun) markApplied(receivedAt time.Time) {
	now := time.Now()
	r.stats.applyLatency.record(now.Sub(receivedAt))
	r.stats.lastAppliedUnixUs.Store(now.UnixMicro())
	if r.stats.applied.Add(1) == int64(r.cfg.agents) {
		round := r.stats.appliedRound.Add(1)
		out.emit("all_applied", map[string]any{"pid": os.Getpid(), "round": round, "first_config_unix_ms": float64(r.stats.firstConfigUnixUs.Load()) / 1000})
	}
}

// backoff sleeps a full-jitter exponential delay (250 ms doubling, 5 s cap).
func backoff(ctx context.Context, attempt int) {
	ceiling := 250 * time.Millisecond << min(attempt, 5)
	ceiling = min(ceiling, 5*time.Second)
	select {
	case <-time.After(time.Duration(rand.Int64N(int64(ceiling)) + 1)):
	case <-ctx.Done():
	}
}

// pending is one agent message waiting for the server's answer.
type pending struct {
	kind string // full, hello, hb, applied
	at   time.Time
}

// simAgent is one simulated agent. Its mutable state is only touched by its
// session's goroutines under mu.
type simAgent struct {
	run   *loadRun
	index int
	slot  int
	uid   []byte

	mu          sync.Mutex
	seq         uint64
	everSynced  bool
	synced      bool
	appliedHash []byte
	effective   []byte
	queue       []pending
	configAt    time.Time
	remoteState *protobufs.RemoteConfigStatus
}

func (a *simAgent) nextSeq() uint64 {
	s := a.seq
	a.seq++
	return s
}

// fullState builds the complete state message (caller holds mu).
func (a *simAgent) fullState() *protobufs.AgentToServer {
	eff := a.effective
	if eff == nil && a.run.cfg.effective {
		eff = a.run.effBody
	}
	m := fullAgentToServer(a.uid, a.nextSeq(), a.index, eff, a.run.start)
	if !a.run.cfg.effective {
		m.Capabilities &^= uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig)
	}
	if a.remoteState != nil {
		m.RemoteConfigStatus = a.remoteState
	}
	return m
}

func (a *simAgent) compressed() *protobufs.AgentToServer {
	caps := agentCapabilities
	if !a.run.cfg.effective {
		caps &^= uint64(protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig)
	}
	return &protobufs.AgentToServer{InstanceUid: a.uid, SequenceNum: a.nextSeq(), Capabilities: caps}
}

// appliedReport reports the newly applied remote config and the effective
// config that results from it (caller holds mu).
func (a *simAgent) appliedReport(rc *protobufs.AgentRemoteConfig) *protobufs.AgentToServer {
	m := a.compressed()
	a.appliedHash = rc.GetConfigHash()
	a.remoteState = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: rc.GetConfigHash(), Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
	m.RemoteConfigStatus = a.remoteState
	if a.run.cfg.effective {
		if f := rc.GetConfig().GetConfigMap()[configFileName]; f != nil {
			a.effective = f.GetBody()
		}
		m.EffectiveConfig = &protobufs.EffectiveConfig{ConfigMap: rc.GetConfig()}
	}
	return m
}

// handleAnswer applies one ServerToAgent (caller holds mu) and returns the
// message to send next, if any, with its kind.
func (a *simAgent) handleAnswer(msg *protobufs.ServerToAgent, sessionStart time.Time) (*protobufs.AgentToServer, string) {
	r := a.run
	now := time.Now()
	var answered pending
	if len(a.queue) > 0 {
		answered = a.queue[0]
		a.queue = a.queue[1:]
	}
	// The answer counts for the message it answers even when it also asks for the full
	// state: an APPLIED report answered that way was still received by the server.
	full := msg.GetFlags()&uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState) != 0
	if full {
		r.stats.fullStateRequests.Add(1)
		if a.synced {
			a.synced = false
			r.stats.synced.Add(-1)
		}
		if answered.kind == "applied" {
			r.markApplied(a.configAt)
		}
		return a.fullState(), "full"
	}
	switch answered.kind {
	case "full", "hello":
		if !a.synced {
			a.synced = true
			a.everSynced = true
			r.markSynced(sessionStart)
		}
	case "hb":
		r.stats.hbRTT.record(now.Sub(answered.at))
	case "applied":
		r.markApplied(a.configAt)
	}
	if rc := msg.GetRemoteConfig(); rc != nil && !bytes.Equal(rc.GetConfigHash(), a.appliedHash) {
		a.configAt = now
		first := now.UnixMicro()
		for {
			cur := r.stats.firstConfigUnixUs.Load()
			if (cur != 0 && cur <= first) || r.stats.firstConfigUnixUs.CompareAndSwap(cur, first) {
				break
			}
		}
		return a.appliedReport(rc), "applied"
	}
	return nil, ""
}

// ---- WebSocket ----

func encodeWS(m *protobufs.AgentToServer) ([]byte, error) {
	b, err := proto.MarshalOptions{}.MarshalAppend([]byte{0}, m)
	return b, err
}

func decodeWS(data []byte, m *protobufs.ServerToAgent) error {
	header, n := binary.Uvarint(data)
	if n <= 0 || header != 0 {
		return errors.New("bad ws header")
	}
	return proto.Unmarshal(data[n:], m)
}

type wsSession struct {
	conn *websocket.Conn
	wmu  sync.Mutex
}

func (s *wsSession) send(m *protobufs.AgentToServer) error {
	b, err := encodeWS(m)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return s.conn.WriteMessage(websocket.BinaryMessage, b)
}

func (a *simAgent) runWS(ctx context.Context) {
	r := a.run
	dialer := r.dialers[a.slot%len(r.dialers)]
	attempt := 0
	for ctx.Err() == nil {
		sessionStart := time.Now()
		r.dialSem <- struct{}{}
		conn, resp, err := dialer.DialContext(ctx, r.cfg.url, nil)
		<-r.dialSem
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.stats.dialFailures.Add(1)
			backoff(ctx, attempt)
			attempt++
			continue
		}
		attempt = 0
		r.stats.connected.Add(1)
		a.wsSession(ctx, conn, sessionStart)
		r.stats.connected.Add(-1)
		a.mu.Lock()
		if a.synced {
			a.synced = false
			r.stats.synced.Add(-1)
		}
		a.queue = a.queue[:0]
		a.mu.Unlock()
		if ctx.Err() == nil {
			r.stats.reconnects.Add(1)
			backoff(ctx, 0)
		}
	}
}

func (a *simAgent) wsSession(ctx context.Context, conn *websocket.Conn, sessionStart time.Time) {
	r := a.run
	s := &wsSession{conn: conn}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-sctx.Done(); _ = conn.Close() }()

	// First message: the full state on the first session; afterwards a
	// compressed one, and the server asks for the full state if it lacks it.
	a.mu.Lock()
	var first *protobufs.AgentToServer
	kind := "hello"
	if !a.everSynced {
		first, kind = a.fullState(), "full"
	} else {
		first = a.compressed()
	}
	a.queue = append(a.queue, pending{kind: kind, at: time.Now()})
	a.mu.Unlock()
	if err := s.send(first); err != nil {
		r.stats.errs.Add(1)
		return
	}
	r.stats.sent.Add(1)

	if r.cfg.heartbeat > 0 {
		go a.heartbeatLoop(sctx, s)
	}
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() == nil && !r.stopping.Load() {
				r.stats.errs.Add(1)
			}
			return
		}
		r.stats.received.Add(1)
		var msg protobufs.ServerToAgent
		if err := decodeWS(data, &msg); err != nil {
			r.stats.errs.Add(1)
			continue
		}
		a.mu.Lock()
		next, kind := a.handleAnswer(&msg, sessionStart)
		if next != nil {
			a.queue = append(a.queue, pending{kind: kind, at: time.Now()})
		}
		a.mu.Unlock()
		if next != nil {
			if err := s.send(next); err != nil {
				r.stats.errs.Add(1)
				return
			}
			r.stats.sent.Add(1)
		}
	}
}

// heartbeatLoop sends a compressed status every --heartbeat, starting at a
// random phase so the fleet's heartbeats are spread evenly.
func (a *simAgent) heartbeatLoop(ctx context.Context, s *wsSession) {
	r := a.run
	phase := time.Duration(rand.Int64N(int64(r.cfg.heartbeat)))
	t := time.NewTimer(phase)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(r.cfg.heartbeat)
		a.mu.Lock()
		if !a.synced || len(a.queue) > 0 {
			a.mu.Unlock()
			r.stats.hbSkipped.Add(1)
			continue
		}
		m := a.compressed()
		a.queue = append(a.queue, pending{kind: "hb", at: time.Now()})
		a.mu.Unlock()
		if err := s.send(m); err != nil {
			return
		}
		r.stats.sent.Add(1)
		r.stats.hbSent.Add(1)
	}
}

// ---- HTTP polling ----

func (a *simAgent) runHTTP(ctx context.Context) {
	r := a.run
	client := r.clients[a.slot%len(r.clients)]
	needFull := true
	var next *protobufs.AgentToServer
	kind := ""
	attempt := 0
	sessionStart := time.Now()
	firstPoll := true
	phased := false
	for ctx.Err() == nil {
		a.mu.Lock()
		if next == nil {
			if needFull {
				next, kind = a.fullState(), "full"
			} else {
				next, kind = a.compressed(), "hb"
			}
		}
		a.queue = append(a.queue[:0], pending{kind: kind, at: time.Now()})
		a.mu.Unlock()
		if firstPoll {
			r.dialSem <- struct{}{}
		}
		t0 := time.Now()
		msg, err := a.post(ctx, client, next)
		if firstPoll {
			<-r.dialSem
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.stats.errs.Add(1)
			backoff(ctx, attempt)
			attempt++
			continue // resend the same message
		}
		firstPoll = false
		attempt = 0
		r.stats.sent.Add(1)
		r.stats.received.Add(1)
		r.stats.httpRequests.Add(1)
		if kind == "hb" {
			r.stats.httpPoll.record(time.Since(t0))
			r.stats.hbSent.Add(1)
		}
		a.mu.Lock()
		next, kind = a.handleAnswer(msg, sessionStart)
		needFull = kind == "full"
		a.mu.Unlock()
		if next != nil {
			continue // report at once: full state requested or config applied
		}
		if r.cfg.pollInterval > 0 {
			wait := r.cfg.pollInterval
			if !phased {
				phased = true
				wait = time.Duration(rand.Int64N(int64(r.cfg.pollInterval))) + 1
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
	}
}

func (a *simAgent) post(ctx context.Context, client *http.Client, m *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
	body, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.run.cfg.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("http status %d", resp.StatusCode)
	}
	var msg protobufs.ServerToAgent
	if err := proto.Unmarshal(data, &msg); err != nil {
		return nil, err
	}
	return &msg, nil
}
