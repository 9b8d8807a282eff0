package main

// The soak fleet's agents: their state, the messages they send, how they answer the
// server, and the phase (churning or settled) that plans their sessions.

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
)

// soakAgent is one agent. Its state is guarded by mu; rng is used only by its session loop.
type soakAgent struct {
	run    *soakRun
	index  int
	slot   int
	uid    []byte
	http   bool
	rng    *rand.Rand
	client *http.Client // HTTP agents: their own connection, or a shared pool
	pooled bool         // the client is shared (--http-pool)
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
