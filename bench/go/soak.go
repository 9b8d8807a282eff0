package main

// `opamp-bench soak`: a fleet for opamp-sdk's soak and fault suites (test/reliability).
// Unlike `load`, its agents keep their identity and come and go:
//
//   - every agent's instance UID, transport and schedule follow from --seed and its index,
//     so a process started again with the same flags brings back the same agents;
//   - with churn on, each session lasts a seeded time and ends gracefully (agent_disconnect),
//     abruptly (a TCP reset; over HTTP also a request cut off in its body) or silently
//     (the agent stops answering and the server must notice), then it stays away a while;
//   - an HTTP agent has its own keep-alive connection, as a fleet of separate hosts does,
//     or (--http-pool) shares a few with the process's other agents, as behind a proxy;
//   - a remote config is applied at once or through APPLYING first;
//   - the churn runs from the start with --churn, and "churn" / "settle" on stdin start and
//     stop it (settled, every agent comes back and stays); "report" prints each agent's view
//     (UID, transport, applied hash); EOF on stdin stops the process.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
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
	httpPool        int
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
	fs.IntVar(&cfg.httpPool, "http-pool", 0, "HTTP agents share this many keep-alive connections per source address (0: one each)")
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
	if cfg.agents < 1 || cfg.dialConcurrency < 1 || cfg.httpPool < 0 || cfg.pollInterval <= 0 || cfg.sessionMax < cfg.sessionMin || cfg.offlineMax < cfg.offlineMin {
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
	// With --http-pool, the HTTP agents share a few keep-alive connections per source
	// address, as agents behind a load balancer or proxy do: each connection carries many
	// agents' requests and is seldom idle.
	var pools []*http.Client
	if cfg.httpPool > 0 {
		for _, d := range r.tcpDial {
			pools = append(pools, &http.Client{
				Timeout: 30 * time.Second,
				Transport: &http.Transport{
					DialContext:         d.DialContext,
					MaxConnsPerHost:     cfg.httpPool,
					MaxIdleConnsPerHost: cfg.httpPool,
					IdleConnTimeout:     120 * time.Second,
					DisableCompression:  true,
				},
			})
		}
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
		if a.http && cfg.httpPool > 0 {
			a.client, a.pooled = pools[i%len(pools)], true
		} else if a.http {
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
