package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"
)

func init() {
	register("codec", command{summary: "Go protobuf encode/decode timings of a full AgentToServer and an 8 KiB-config ServerToAgent", run: runCodec})
}

// codecMessages are the two scenario-6 messages. Written with --dump so the
// TypeScript side measures the very same bytes.
func codecMessages() (*protobufs.AgentToServer, *protobufs.ServerToAgent) {
	start := time.Unix(1_760_000_000, 0)
	uid := []byte{0x01, 0x92, 0xd1, 0xa4, 0x00, 0x00, 0x7c, 0x3e, 0x9f, 0x1a, 0, 0, 0, 0, 0, 42}
	a2s := fullAgentToServer(uid, 1, 42, configBody(1, 8192), start)
	s2a := remoteConfigMessage(uid, configBody(2, 8192))
	return a2s, s2a
}

// timeOp runs op in batches until minTime has passed (after a warm-up) and
// returns ns per op.
func timeOp(op func(), iterations int, minTime time.Duration) (float64, int) {
	for i := 0; i < iterations/10+1; i++ {
		op()
	}
	runtime.GC()
	n := 0
	t0 := time.Now()
	for n < iterations || time.Since(t0) < minTime {
		for i := 0; i < 100; i++ {
			op()
		}
		n += 100
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n), n
}

func runCodec(args []string) int {
	fs := flag.NewFlagSet("codec", flag.ContinueOnError)
	iterations := fs.Int("iterations", 20000, "minimum operations per measurement")
	minTime := fs.Duration("min-time", time.Second, "minimum time per measurement")
	dump := fs.String("dump", "", "directory to write agent-to-server.bin and server-to-agent.bin into")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	a2s, s2a := codecMessages()
	a2sBytes, err := proto.Marshal(a2s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "codec:", err)
		return 1
	}
	s2aBytes, err := proto.Marshal(s2a)
	if err != nil {
		fmt.Fprintln(os.Stderr, "codec:", err)
		return 1
	}
	if *dump != "" {
		if err := os.MkdirAll(*dump, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "codec:", err)
			return 1
		}
		for name, b := range map[string][]byte{"agent-to-server.bin": a2sBytes, "server-to-agent.bin": s2aBytes} {
			if err := os.WriteFile(filepath.Join(*dump, name), b, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "codec:", err)
				return 1
			}
		}
	}
	type result struct {
		name string
		size int
		op   func()
	}
	var sink int
	cases := []result{
		{"AgentToServer.encode", len(a2sBytes), func() { b, _ := proto.Marshal(a2s); sink += len(b) }},
		{"AgentToServer.decode", len(a2sBytes), func() {
			var m protobufs.AgentToServer
			_ = proto.Unmarshal(a2sBytes, &m)
			sink += int(m.SequenceNum)
		}},
		{"ServerToAgent.encode", len(s2aBytes), func() { b, _ := proto.Marshal(s2a); sink += len(b) }},
		{"ServerToAgent.decode", len(s2aBytes), func() {
			var m protobufs.ServerToAgent
			_ = proto.Unmarshal(s2aBytes, &m)
			sink += int(m.Capabilities)
		}},
	}
	for _, c := range cases {
		ns, n := timeOp(c.op, *iterations, *minTime)
		out.emit("codec", map[string]any{
			"impl": "go-protobuf", "case": c.name, "bytes": c.size, "ns_per_op": ns, "ops_per_s": 1e9 / ns,
			"mb_per_s": float64(c.size) / ns * 1e3, "iterations": n,
		})
	}
	out.emit("codec_done", map[string]any{"go": runtime.Version(), "sink": sink % 2})
	return 0
}
