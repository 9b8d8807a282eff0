package main

// golden: write opamp-go's encoding of every fixture for the TypeScript side to read.

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"
)

func init() {
	register("golden", command{
		summary: "write fully-populated AgentToServer/ServerToAgent messages encoded by opamp-go",
		run:     runGolden,
	})
}

func runGolden(args []string) int {
	fs := flag.NewFlagSet("golden", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write NAME.<Type>.bin and NAME.json into (created if missing)")
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	if *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: opamp-interop golden -out DIR")
		return 2
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "golden:", err)
		return 1
	}

	fxs := fixtures()
	// Refuse to write a set that does not exercise the whole schema.
	cov := coverage{}
	for _, f := range fxs {
		cov.add(f.msg.ProtoReflect())
	}
	if miss := cov.missing(rootDescriptors()...); len(miss) > 0 {
		for _, m := range miss {
			fmt.Fprintln(os.Stderr, "golden: fixtures incomplete:", m)
		}
		return 1
	}

	// Deterministic: map entries sorted by key, so the files are reproducible.
	marshal := proto.MarshalOptions{Deterministic: true}
	for _, f := range fxs {
		bin, err := marshal.Marshal(f.msg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "golden: %s: marshal: %v\n", f.name, err)
			return 1
		}
		js, err := jsonOut.Marshal(f.msg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "golden: %s: protojson: %v\n", f.name, err)
			return 1
		}
		binPath := filepath.Join(*out, f.name+"."+typeName(f.msg)+".bin")
		if err := os.WriteFile(binPath, bin, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "golden:", err)
			return 1
		}
		if err := os.WriteFile(filepath.Join(*out, f.name+".json"), append(js, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "golden:", err)
			return 1
		}
		fmt.Printf("wrote %s (%d bytes)\n", filepath.Base(binPath), len(bin))
	}
	fmt.Printf("golden: %d messages written to %s\n", len(fxs), *out)
	return 0
}
