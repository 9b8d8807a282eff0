package main

// `opamp-bench soak`: a fleet for opamp-sdk's soak and fault suites (test/reliability).
// Unlike `load`, its agents keep their identity and come and go:
//
//   - every agent's instance UID, transport and schedule follow from --seed and its index,
//     so a process started again with the same flags brings back the same agents;
//   - with churn on, each session lasts a seeded time and ends gracefully (agent_disconnect),
//     abruptly (a TCP reset; over HTTP also a request cut off in its body) or silently
//     (the agent stops answering and the server must notice), then it stays away a while;
//   - an HTTP agent has its own keep-alive connection, as a fleet of separate hosts does;
//   - a remote config is applied at once or through APPLYING first;
//   - the churn runs from the start with --churn, and "churn" / "settle" on stdin start and
//     stop it (settled, every agent comes back and stays); "report" prints each agent's view
//     (UID, transport, applied hash); EOF on stdin stops the process.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"
)

func init() {
	register("soak", command{summary: "agents with seeded UIDs over both transports that come and go (soak and fault suites)", run: runSoak})
}

type soakConfig struct {
	wsURL, httpURL  string
	agents          int
	indexBase       int
	seed            uint64
	generation      uint64
	httpShare       float64
	fullShare       float64
	twoStepShare    float64
	token           string
	sourceAddrs     []net.IP
	heartbeat       time.Duration
	pollInterval    time.Duration
	sessionMin      time.Duration
	sessionMax      time.Duration
	offlineMin      time.Duration
	offlineMax      time.Duration
	gracefulShare   float64
	abruptShare     float64
	configBytes     int
	progress        time.Duration
	dialConcurrency int
	churn           bool
}

// soakStats are the process-wide counters of progress lines.
type soakStats struct {
	online, sessions, sent, received                 atomic.Int64
	endGraceful, endAbrupt, endSilent, serverClosed  atomic.Int64
	applying, applied, fullStateRequests             atomic.Int64
	dialFailures, transportErrors, errorResponses    atomic.Int64
	status4xx, status5xx, malformed, configsReceived atomic.Int64
}

type soakRun struct {
	cfg      soakConfig
	start    time.Time
	dialSem  chan struct{}
	wsDial   []*websocket.Dialer
	tcpDial  []*net.Dialer
	agents   []*soakAgent
	phase    phase
	stats    soakStats
	header   http.Header
	path     string
	hostPort string
}

// soakUID is the agent's instance UID: SHA-256 of the seed and index, shaped as a UUIDv7.
func soakUID(seed uint64, index int) []byte {
	sum := sha256.Sum256([]byte(fmt.Sprintf("opamp-soak/%d/%d", seed, index)))
	uid := sum[:16]
	uid[6] = (uid[6] & 0x0f) | 0x70
	uid[8] = (uid[8] & 0x3f) | 0x80
	return uid
}

func runSoak(args []string) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	var cfg soakConfig
	var srcs string
	fs.StringVar(&cfg.wsURL, "url-ws", "", "WebSocket endpoint (ws://127.x.x.x:port/path)")
	fs.StringVar(&cfg.httpURL, "url-http", "", "HTTP endpoint (http://127.x.x.x:port/path)")
	fs.IntVar(&cfg.agents, "agents", 100, "agents in this process")
	fs.IntVar(&cfg.indexBase, "index-base", 0, "index of this process's first agent")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of UIDs, transports and schedules")
	fs.Uint64Var(&cfg.generation, "generation", 0, "restart count of this process (varies the schedules, not the UIDs)")
	fs.Float64Var(&cfg.httpShare, "http-share", 0.5, "share of agents on HTTP polling")
	fs.Float64Var(&cfg.fullShare, "full-share", 0.3, "share of sessions (after the first) that start with the full state")
	fs.Float64Var(&cfg.twoStepShare, "two-step-share", 0.5, "share of remote configs reported APPLYING before APPLIED")
	fs.StringVar(&cfg.token, "token", "", "bearer token sent by every agent")
	fs.StringVar(&srcs, "source-addrs", "127.0.0.1", "comma-separated 127.0.0.x addresses to dial from")
	fs.DurationVar(&cfg.heartbeat, "heartbeat", 30*time.Second, "WebSocket heartbeat interval")
	fs.DurationVar(&cfg.pollInterval, "poll-interval", 5*time.Second, "HTTP poll interval")
	fs.DurationVar(&cfg.sessionMin, "session-min", 0, "shortest session (0 with --session-max 0: no churn)")
	fs.DurationVar(&cfg.sessionMax, "session-max", 0, "longest session")
	fs.DurationVar(&cfg.offlineMin, "offline-min", 0, "shortest time away between sessions")
	fs.DurationVar(&cfg.offlineMax, "offline-max", 0, "longest time away between sessions")
	fs.Float64Var(&cfg.gracefulShare, "graceful-share", 0.4, "share of sessions that end with agent_disconnect")
	fs.Float64Var(&cfg.abruptShare, "abrupt-share", 0.35, "share of sessions that end abruptly (the rest end silently)")
	fs.IntVar(&cfg.configBytes, "config-bytes", 1024, "size of the effective config an agent starts with")
	fs.DurationVar(&cfg.progress, "progress", time.Second, "progress line interval")
	fs.IntVar(&cfg.dialConcurrency, "dial-concurrency", 64, "concurrent dials")
	fs.BoolVar(&cfg.churn, "churn", false, "churn from the start (else agents stay until \"churn\" on stdin)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if cfg.sourceAddrs, err = parseSourceAddrs(srcs); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	for _, u := range []string{cfg.wsURL, cfg.httpURL} {
		if err := checkLoopbackURL(u); err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			return 2
		}
	}
	if cfg.agents < 1 || cfg.dialConcurrency < 1 || cfg.pollInterval <= 0 || cfg.sessionMax < cfg.sessionMin || cfg.offlineMax < cfg.offlineMin {
		fmt.Fprintln(os.Stderr, "soak: bad counts or durations")
		return 2
	}
	r, err := newSoakRun(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	return r.run()
}

func newSoakRun(cfg soakConfig) (*soakRun, error) {
	u, err := url.Parse(cfg.httpURL)
	if err != nil {
		return nil, err
	}
	r := &soakRun{cfg: cfg, dialSem: make(chan struct{}, cfg.dialConcurrency), phase: phase{churn: cfg.churn, changed: make(chan struct{})}, path: u.RequestURI(), hostPort: u.Host}
	r.header = http.Header{}
	if cfg.token != "" {
		r.header.Set("Authorization", "Bearer "+cfg.token)
	}
	for _, ip := range cfg.sourceAddrs {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
		r.tcpDial = append(r.tcpDial, nd)
		r.wsDial = append(r.wsDial, &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096})
	}
	for i := 0; i < cfg.agents; i++ {
		index := cfg.indexBase + i
		choose := rand.New(rand.NewPCG(cfg.seed, uint64(index)))
		a := &soakAgent{
			run:       r,
			index:     index,
			slot:      i,
			uid:       soakUID(cfg.seed, index),
			http:      choose.Float64() < cfg.httpShare,
			rng:       rand.New(rand.NewPCG(cfg.seed^(cfg.generation*0x9e3779b97f4a7c15), uint64(index)+1<<32)),
			fresh:     true,
			effective: configBody(index, cfg.configBytes),
		}
		if a.http {
			// One keep-alive connection per agent, as a fleet of separate hosts has: the
			// server then holds as many HTTP connections as there are agents polling, in
			// every phase, not whatever a shared pool happened to open.
			dial := r.tcpDial[i%len(r.tcpDial)].DialContext
			a.client = &http.Client{
				Timeout: 30 * time.Second,
				Transport: &http.Transport{
					DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
						c, err := dial(ctx, network, addr)
						if err == nil {
							a.connMu.Lock()
							a.conn = c
							a.connMu.Unlock()
						}
						return c, err
					},
					MaxConnsPerHost:     1,
					MaxIdleConnsPerHost: 1,
					IdleConnTimeout:     120 * time.Second,
					DisableCompression:  true,
				},
			}
		}
		r.agents = append(r.agents, a)
	}
	return r, nil
}

func (r *soakRun) run() int {
	ctx, cancel := context.WithCancel(context.Background())
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
	// Commands on stdin; EOF (the runner ended or died) stops the process.
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch sc.Text() {
			case "churn":
				r.phase.set(true)
				out.emit("churning", map[string]any{"pid": os.Getpid()})
			case "settle":
				r.phase.set(false)
				out.emit("settling", map[string]any{"pid": os.Getpid()})
			case "report":
				r.report()
			}
		}
		cancel()
	}()
	r.start = time.Now()
	uids := make([]string, len(r.agents))
	for i, a := range r.agents {
		uids[i] = hex.EncodeToString(a.uid)
	}
	out.emit("start", map[string]any{"pid": os.Getpid(), "agents": len(r.agents), "index_base": r.cfg.indexBase, "uids": uids})
	var wg sync.WaitGroup
	for _, a := range r.agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.loop(ctx)
		}()
	}
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
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	r.emitProgress("summary")
	return 0
}

func (r *soakRun) emitProgress(ev string) {
	s := &r.stats
	out.emit(ev, map[string]any{
		"pid": os.Getpid(), "t_ms": time.Since(r.start).Milliseconds(), "agents": len(r.agents),
		"online": s.online.Load(), "sessions": s.sessions.Load(), "sent": s.sent.Load(), "received": s.received.Load(),
		"end_graceful": s.endGraceful.Load(), "end_abrupt": s.endAbrupt.Load(), "end_silent": s.endSilent.Load(),
		"server_closed": s.serverClosed.Load(), "applying": s.applying.Load(), "applied": s.applied.Load(),
		"configs_received": s.configsReceived.Load(), "full_state_requests": s.fullStateRequests.Load(),
		"dial_failures": s.dialFailures.Load(), "transport_errors": s.transportErrors.Load(),
		"error_responses": s.errorResponses.Load(), "status_4xx": s.status4xx.Load(), "status_5xx": s.status5xx.Load(),
		"malformed": s.malformed.Load(),
	})
}

// report prints each agent's own view: what it applied and on which transport.
func (r *soakRun) report() {
	type view struct {
		Index   int    `json:"i"`
		UID     string `json:"uid"`
		HTTP    bool   `json:"http"`
		Applied string `json:"applied"`
		Status  int32  `json:"status"`
	}
	views := make([]view, 0, len(r.agents))
	for _, a := range r.agents {
		a.mu.Lock()
		v := view{Index: a.index, UID: hex.EncodeToString(a.uid), HTTP: a.http, Applied: hex.EncodeToString(a.applied)}
		if a.status != nil {
			v.Status = int32(a.status.Status)
		}
		a.mu.Unlock()
		views = append(views, v)
	}
	out.emit("report", map[string]any{"pid": os.Getpid(), "agents": views})
}

// soakAgent is one agent. Its state is guarded by mu; rng is used only by its session loop.
type soakAgent struct {
	run    *soakRun
	index  int
	slot   int
	uid    []byte
	http   bool
	rng    *rand.Rand
	client *http.Client // HTTP agents: their own connection
	connMu sync.Mutex
	conn   net.Conn // the HTTP agent's latest connection, reset by an abrupt end

	mu        sync.Mutex
	seq       uint64
	fresh     bool
	applied   []byte
	effective []byte
	status    *protobufs.RemoteConfigStatus
	twoStep   *rand.Rand
}

type endKind int

const (
	endNone endKind = iota
	endGraceful
	endAbrupt
	endSilent
)

// phase says whether agents churn; every change closes `changed`, so that sessions and
// agents waiting to come back re-plan at once.
type phase struct {
	mu      sync.Mutex
	churn   bool
	changed chan struct{}
}

func (p *phase) state() (bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.churn, p.changed
}

func (p *phase) set(churn bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.churn != churn {
		p.churn = churn
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// lifetime is a session's planned end: none while the fleet is settled, else a seeded
// length, ending and time away. It is drawn again whenever the phase changes.
type lifetime struct {
	a      *soakAgent
	timer  *time.Timer
	C      <-chan time.Time
	end    endKind
	away   time.Duration
	change <-chan struct{}
}

func (a *soakAgent) newLifetime() *lifetime {
	l := &lifetime{a: a}
	l.replan()
	return l
}

func (l *lifetime) replan() {
	l.stop()
	churn, changed := l.a.run.phase.state()
	l.change, l.C, l.end = changed, nil, endNone
	c := l.a.run.cfg
	if !churn || c.sessionMax == 0 {
		return
	}
	length := c.sessionMin + time.Duration(l.a.rng.Int64N(int64(c.sessionMax-c.sessionMin)+1))
	p := l.a.rng.Float64()
	switch {
	case p < c.gracefulShare:
		l.end = endGraceful
	case p < c.gracefulShare+c.abruptShare:
		l.end = endAbrupt
	default:
		l.end = endSilent
	}
	l.away = c.offlineMin + time.Duration(l.a.rng.Int64N(int64(c.offlineMax-c.offlineMin)+1))
	l.timer = time.NewTimer(length)
	l.C = l.timer.C
}

func (l *lifetime) stop() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

// away waits d while the fleet churns; the context ending, settling or `done` ends it early.
func (a *soakAgent) away(ctx context.Context, d time.Duration, done <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		churn, changed := a.run.phase.state()
		if !churn {
			return
		}
		select {
		case <-t.C:
			return
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-changed:
		}
	}
}

func (a *soakAgent) loop(ctx context.Context) {
	if churn, _ := a.run.phase.state(); churn && a.run.cfg.sessionMin > 0 {
		// Spread a churning fleet's first sessions over the shortest session length.
		a.away(ctx, time.Duration(a.rng.Int64N(int64(a.run.cfg.sessionMin)+1)), nil)
	}
	for ctx.Err() == nil {
		if a.http {
			a.httpSession(ctx)
		} else {
			a.wsSession(ctx)
		}
	}
}

func (a *soakAgent) nextSeq() uint64 {
	s := a.seq
	a.seq++
	return s
}

// fullState is the agent's whole state (caller holds mu).
func (a *soakAgent) fullState() *protobufs.AgentToServer {
	m := fullAgentToServer(a.uid, a.nextSeq(), a.index, a.effective, a.run.start)
	if a.status != nil {
		m.RemoteConfigStatus = a.status
	}
	a.fresh = false
	return m
}

func (a *soakAgent) compressed() *protobufs.AgentToServer {
	return &protobufs.AgentToServer{InstanceUid: a.uid, SequenceNum: a.nextSeq(), Capabilities: agentCapabilities}
}

// hello is a session's first message: the full state after a process start, otherwise the
// full state for a seeded share of sessions and a compressed status for the rest.
func (a *soakAgent) hello(full bool) *protobufs.AgentToServer {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fresh || full {
		return a.fullState()
	}
	return a.compressed()
}

// handle applies one ServerToAgent and returns what to send back, in order.
func (a *soakAgent) handle(msg *protobufs.ServerToAgent) []*protobufs.AgentToServer {
	r := a.run
	r.stats.received.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if msg.GetErrorResponse() != nil {
		r.stats.errorResponses.Add(1)
		return nil
	}
	var outMsgs []*protobufs.AgentToServer
	full := msg.GetFlags()&uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState) != 0
	if rc := msg.GetRemoteConfig(); rc != nil {
		r.stats.configsReceived.Add(1)
		if !bytes.Equal(rc.GetConfigHash(), a.applied) {
			if a.twoStep == nil {
				a.twoStep = rand.New(rand.NewPCG(r.cfg.seed, uint64(a.index)+2<<32))
			}
			if !full && a.twoStep.Float64() < r.cfg.twoStepShare {
				m := a.compressed()
				m.RemoteConfigStatus = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: rc.GetConfigHash(), Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING}
				outMsgs = append(outMsgs, m)
				r.stats.applying.Add(1)
			}
			a.applied = rc.GetConfigHash()
			a.status = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: rc.GetConfigHash(), Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
			if f := rc.GetConfig().GetConfigMap()[configFileName]; f != nil {
				a.effective = f.GetBody()
			}
			r.stats.applied.Add(1)
			if !full {
				m := a.compressed()
				m.RemoteConfigStatus = a.status
				m.EffectiveConfig = &protobufs.EffectiveConfig{ConfigMap: configMap(a.effective)}
				outMsgs = append(outMsgs, m)
			}
		}
	}
	if full {
		r.stats.fullStateRequests.Add(1)
		outMsgs = append(outMsgs, a.fullState())
	}
	return outMsgs
}

func (a *soakAgent) disconnectMessage() *protobufs.AgentToServer {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.compressed()
	m.AgentDisconnect = &protobufs.AgentDisconnect{}
	return m
}

// ---- WebSocket ----

type soakWS struct {
	conn *websocket.Conn
	wmu  sync.Mutex
}

func (s *soakWS) send(m *protobufs.AgentToServer) error {
	b, err := encodeWS(m)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return s.conn.WriteMessage(websocket.BinaryMessage, b)
}

// reset closes the TCP connection with an RST: no close frame, no FIN.
func reset(c net.Conn) {
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = c.Close()
}

// dialWS connects, retrying with full-jitter backoff; nil when the context ended.
func (a *soakAgent) dialWS(ctx context.Context) *websocket.Conn {
	r := a.run
	dialer := r.wsDial[a.slot%len(r.wsDial)]
	for attempt := 0; ctx.Err() == nil; attempt++ {
		r.dialSem <- struct{}{}
		conn, resp, err := dialer.DialContext(ctx, r.cfg.wsURL, r.header)
		<-r.dialSem
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		if err == nil {
			return conn
		}
		if ctx.Err() != nil {
			return nil
		}
		r.stats.dialFailures.Add(1)
		if resp != nil {
			countStatus(&r.stats, resp.StatusCode)
		}
		backoff(ctx, attempt)
	}
	return nil
}

func countStatus(s *soakStats, code int) {
	switch {
	case code >= 500:
		s.status5xx.Add(1)
	case code >= 400:
		s.status4xx.Add(1)
	}
}

func (a *soakAgent) wsSession(ctx context.Context) {
	r := a.run
	conn := a.dialWS(ctx)
	if conn == nil {
		return
	}
	r.stats.sessions.Add(1)
	r.stats.online.Add(1)
	defer r.stats.online.Add(-1)
	s := &soakWS{conn: conn}
	var silent atomic.Bool
	conn.SetPingHandler(func(data string) error {
		if silent.Load() {
			return nil
		}
		s.wmu.Lock()
		defer s.wmu.Unlock()
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
	})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if silent.Load() {
				continue
			}
			var msg protobufs.ServerToAgent
			if err := decodeWS(data, &msg); err != nil {
				r.stats.malformed.Add(1)
				continue
			}
			for _, m := range a.handle(&msg) {
				if err := s.send(m); err != nil {
					return
				}
				r.stats.sent.Add(1)
			}
		}
	}()
	if err := s.send(a.hello(a.rng.Float64() < r.cfg.fullShare)); err != nil {
		r.stats.transportErrors.Add(1)
		reset(conn.UnderlyingConn())
		<-readerDone
		backoff(ctx, 0)
		return
	}
	r.stats.sent.Add(1)
	hb := time.NewTicker(r.cfg.heartbeat)
	defer hb.Stop()
	life := a.newLifetime()
	defer life.stop()
	for {
		select {
		case <-ctx.Done():
			_ = s.send(a.disconnectMessage())
			s.wmu.Lock()
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			s.wmu.Unlock()
			_ = conn.Close()
			<-readerDone
			return
		case <-readerDone:
			// The server closed the connection (stopped, killed, or dropped a silent agent).
			r.stats.serverClosed.Add(1)
			_ = conn.Close()
			backoff(ctx, 0)
			return
		case <-life.change:
			life.replan()
		case <-hb.C:
			a.mu.Lock()
			m := a.compressed()
			a.mu.Unlock()
			if err := s.send(m); err == nil {
				r.stats.sent.Add(1)
			}
		case <-life.C:
			switch life.end {
			case endGraceful:
				r.stats.endGraceful.Add(1)
				if err := s.send(a.disconnectMessage()); err == nil {
					r.stats.sent.Add(1)
				}
				s.wmu.Lock()
				_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				s.wmu.Unlock()
				_ = conn.Close()
			case endAbrupt:
				r.stats.endAbrupt.Add(1)
				reset(conn.UnderlyingConn())
			case endSilent:
				// The socket stays open but the agent stops answering, pings included, while
				// it is away; then it is reset. The server must drop it on its own.
				r.stats.endSilent.Add(1)
				silent.Store(true)
				hb.Stop()
				a.away(ctx, life.away, readerDone)
				reset(conn.UnderlyingConn())
				<-readerDone
				return
			}
			<-readerDone
			a.away(ctx, life.away, nil)
			return
		}
	}
}

// ---- HTTP polling ----

func (a *soakAgent) post(ctx context.Context, m *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
	r := a.run
	body, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.httpURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if auth := r.header.Get("Authorization"); auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		countStatus(&r.stats, resp.StatusCode)
		return nil, fmt.Errorf("http status %d", resp.StatusCode)
	}
	var msg protobufs.ServerToAgent
	if err := proto.Unmarshal(data, &msg); err != nil {
		r.stats.malformed.Add(1)
		return nil, err
	}
	return &msg, nil
}

// cutOff sends a request whose body stops half-way, then resets the connection.
func (a *soakAgent) cutOff(m *protobufs.AgentToServer) {
	r := a.run
	body, err := proto.Marshal(m)
	if err != nil {
		return
	}
	conn, err := r.tcpDial[a.slot%len(r.tcpDial)].Dial("tcp", r.hostPort)
	if err != nil {
		return
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n", r.path, r.hostPort, len(body))
	if auth := r.header.Get("Authorization"); auth != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
	}
	b.WriteString("\r\n")
	b.Write(body[:len(body)/2])
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write(b.Bytes())
	reset(conn)
}

func (a *soakAgent) httpSession(ctx context.Context) {
	r := a.run
	life := a.newLifetime()
	defer life.stop()
	first := true
	next := []*protobufs.AgentToServer{a.hello(a.rng.Float64() < r.cfg.fullShare)}
	attempt := 0
	for ctx.Err() == nil {
		if len(next) == 0 {
			// Waits for the next poll; the session may end meanwhile.
			t := time.NewTimer(r.cfg.pollInterval)
			select {
			case <-t.C:
			case <-ctx.Done():
			case <-life.change:
				life.replan()
				t.Stop()
				continue
			case <-life.C:
				t.Stop()
				a.endHTTP(ctx, life)
				return
			}
			t.Stop()
			a.mu.Lock()
			next = append(next, a.compressed())
			a.mu.Unlock()
		}
		if first {
			r.dialSem <- struct{}{}
		}
		msg, err := a.post(ctx, next[0])
		if first {
			<-r.dialSem
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.stats.transportErrors.Add(1)
			backoff(ctx, attempt)
			attempt++
			continue // the same message again
		}
		if first {
			first = false
			r.stats.sessions.Add(1)
			r.stats.online.Add(1)
			defer r.stats.online.Add(-1)
		}
		attempt = 0
		r.stats.sent.Add(1)
		// Whatever the answer asks for (the full state, a config's status) goes at once.
		next = append(next[1:], a.handle(msg)...)
	}
}

// endHTTP ends an HTTP session the way its lifetime says, then stays away.
func (a *soakAgent) endHTTP(ctx context.Context, life *lifetime) {
	r := a.run
	switch life.end {
	case endGraceful:
		r.stats.endGraceful.Add(1)
		if _, err := a.post(ctx, a.disconnectMessage()); err == nil {
			r.stats.sent.Add(1)
		}
		a.client.CloseIdleConnections()
	case endAbrupt:
		r.stats.endAbrupt.Add(1)
		a.mu.Lock()
		m := a.compressed()
		a.mu.Unlock()
		a.cutOff(m)
		a.connMu.Lock()
		if a.conn != nil {
			reset(a.conn)
		}
		a.connMu.Unlock()
	case endSilent:
		// Its connection is left open: the server closes it when idle too long.
		// Stops polling: the server's liveness sweep must drop it.
		r.stats.endSilent.Add(1)
	}
	a.away(ctx, life.away, nil)
}
