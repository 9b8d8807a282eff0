// Command opamp-interop is opamp-sdk's cross-implementation harness: it runs
// opamp-go (github.com/open-telemetry/opamp-go) against the TypeScript SDK.
//
// Each subcommand lives in its own file and registers itself in commands from
// that file's init(); main only dispatches. Run `opamp-interop help` for the list.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
)

// command is one subcommand. run gets the arguments after the subcommand name
// and returns the process exit code (0 success, 1 check failed, 2 usage error).
type command struct {
	summary string
	run     func(args []string) int
}

// commands is filled by the init() of each subcommand's file.
var commands = map[string]command{}

func register(name string, c command) {
	if _, dup := commands[name]; dup {
		panic("opamp-interop: subcommand registered twice: " + name)
	}
	commands[name] = c
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: opamp-interop <subcommand> [flags]")
	fmt.Fprintln(os.Stderr, "subcommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "run `opamp-interop <subcommand> -h` for its flags")
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
		fmt.Fprintf(os.Stderr, "opamp-interop: unknown subcommand %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	os.Exit(c.run(os.Args[2:]))
}

// parseFailure is the exit code after a subcommand's flag.Parse failed: 0 for
// -h (the flag package has printed the flags), 2 for a usage error.
func parseFailure(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
