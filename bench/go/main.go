// Command opamp-bench is opamp-sdk's benchmark harness. It is written in Go on
// opamp-go's protobufs so that the load on the server under test comes from an
// implementation opamp-sdk did not write.
//
//	opamp-bench load      simulated agents (WebSocket or HTTP polling) against --url
//	opamp-bench goserver  an opamp-go server with the same minimal duties as opamp-sdk's
//	opamp-bench codec     Go protobuf encode/decode timings for the scenario-6 messages
//
// Every subcommand prints JSON lines on stdout. All traffic stays on 127.0.0.0/8.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"
)

type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

func register(name string, c command) {
	if _, dup := commands[name]; dup {
		panic("opamp-bench: subcommand registered twice: " + name)
	}
	commands[name] = c
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: opamp-bench <subcommand> [flags]")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", n, commands[n].summary)
	}
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "opamp-bench: unknown subcommand %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	os.Exit(c.run(os.Args[2:]))
}

// emitter writes one JSON object per line on stdout; safe for concurrent use.
type emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

var out = &emitter{enc: json.NewEncoder(os.Stdout)}

// emit prints ev with "ev" and "unix_ms" filled in.
func (e *emitter) emit(ev string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["ev"] = ev
	fields["unix_ms"] = unixMs(time.Now())
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(fields)
}

func unixMs(t time.Time) float64 {
	return float64(t.UnixMicro()) / 1000
}
