package main

// The soak fleet's sessions over WebSocket and HTTP polling, and how each kind ends.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"
)

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
		if !a.pooled {
			a.client.CloseIdleConnections()
		}
	case endAbrupt:
		r.stats.endAbrupt.Add(1)
		a.mu.Lock()
		m := a.compressed()
		a.mu.Unlock()
		a.cutOff(m)
		// Its own connection is reset too; a shared one (behind a "load balancer") is not.
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
