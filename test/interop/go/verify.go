package main

// verify: decode messages written by another encoder (opamp-sdk's TypeScript
// code) with opamp-go's types and check that the binary and JSON forms agree.

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

func init() {
	register("verify", command{
		summary: "check NAME.<Type>.bin against NAME.json (and optionally a reference dir) with opamp-go's types",
		run:     runVerify,
	})
}

func runVerify(args []string) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	in := fs.String("in", "", "directory holding NAME.<Type>.bin + NAME.json pairs")
	want := fs.String("want", "", "optional directory of reference NAME.<Type>.bin files (e.g. golden output): each input must decode to the same value as its namesake there")
	requireCoverage := fs.Bool("coverage", false, "also fail unless the inputs together populate every field and use every enum value")
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	if *in == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: opamp-interop verify -in DIR [-want DIR] [-coverage]")
		return 2
	}
	entries, problems, err := listEntries(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "verify:", err)
		return 1
	}
	if len(entries) == 0 {
		problems = append(problems, "no NAME.<AgentToServer|ServerToAgent>.bin files found in "+*in)
	}
	failed := len(problems)
	for _, p := range problems {
		fmt.Printf("FAIL %s\n", p)
	}

	cov := coverage{}
	for _, e := range entries {
		errs, note := verifyOne(e, *want, cov)
		label := e.name + "." + e.typ
		if len(errs) == 0 {
			fmt.Printf("ok   %s%s\n", label, note)
			continue
		}
		failed++
		fmt.Printf("FAIL %s\n", label)
		for _, msg := range errs {
			fmt.Println(indent(msg))
		}
	}
	if *requireCoverage {
		for _, m := range cov.missing(rootDescriptors()...) {
			failed++
			fmt.Printf("FAIL coverage: %s\n", m)
		}
	}
	fmt.Printf("verify: %d files, %d failed\n", len(entries), failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// verifyOne checks one pair; it returns the failures and, on success, a note.
func verifyOne(e entry, wantDir string, cov coverage) ([]string, string) {
	var errs []string
	newMsg := topLevel[e.typ]

	bin, err := os.ReadFile(e.binPath)
	if err != nil {
		return []string{err.Error()}, ""
	}
	fromBin := newMsg()
	if err := proto.Unmarshal(bin, fromBin); err != nil {
		return []string{"binary does not decode: " + err.Error()}, ""
	}
	cov.add(fromBin.ProtoReflect())
	for _, u := range unknownFields(fromBin.ProtoReflect(), "") {
		errs = append(errs, "unknown field in binary (field number or wire type differs from opamp-go): "+u)
	}

	js, err := os.ReadFile(e.jsonPath)
	if err != nil {
		errs = append(errs, "json: "+err.Error())
	} else {
		fromJSON := newMsg()
		// DiscardUnknown false: an unknown JSON name is an error, not ignored.
		if err := (protojson.UnmarshalOptions{}).Unmarshal(js, fromJSON); err != nil {
			errs = append(errs, "json does not parse: "+err.Error())
		} else if !proto.Equal(fromBin, fromJSON) {
			errs = append(errs, "binary and json differ (-bin +json):\n"+cmp.Diff(fromBin, fromJSON, protocmp.Transform()))
		}
	}

	note := ""
	if wantDir != "" {
		refPath := filepath.Join(wantDir, filepath.Base(e.binPath))
		ref, err := os.ReadFile(refPath)
		switch {
		case err != nil:
			errs = append(errs, "reference: "+err.Error())
		default:
			refMsg := newMsg()
			if err := proto.Unmarshal(ref, refMsg); err != nil {
				errs = append(errs, "reference does not decode: "+err.Error())
			} else if !proto.Equal(refMsg, fromBin) {
				errs = append(errs, "binary differs from reference "+refPath+" (-want +got):\n"+cmp.Diff(refMsg, fromBin, protocmp.Transform()))
			} else if bytes.Equal(ref, bin) {
				note = " (bytes identical to reference)"
			} else {
				note = " (same value as reference, different bytes)"
			}
		}
	}
	return errs, note
}

func indent(s string) string {
	var b bytes.Buffer
	for _, line := range bytes.Split([]byte(s), []byte("\n")) {
		b.WriteString("     ")
		b.Write(line)
		b.WriteByte('\n')
	}
	return string(bytes.TrimRight(b.Bytes(), "\n"))
}
