package main

// schema: compare our proto schema (opamp.proto.v1, as built by buf) with the
// one compiled into opamp-go, message by message and field by field.

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	pb "github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

const ourPackage = "opamp.proto.v1"

// expectedDifferences are differences we know about and accept, keyed by the
// exact text schema prints for them. Keep this list short: every entry must
// say why the difference cannot matter on the wire (or why we accept it).
var expectedDifferences = map[string]string{
	// Spec v0.18.0 moved the protos to proto/opamp/v1/ and renamed the package;
	// opamp-go v0.23.0 is generated from spec v0.16.0 with `package opamp.proto`.
	// The binary wire format carries field numbers only, never type names, and
	// OpAMP has no google.protobuf.Any, so the package name never reaches the wire.
	`package: ours "opamp.proto.v1", opamp-go "opamp.proto"`: "package renamed in spec v0.18.0; not on the wire",
}

func init() {
	register("schema", command{
		summary: "compare our opamp.proto.v1 schema (a buf image / FileDescriptorSet) with opamp-go's",
		run:     runSchema,
	})
}

func runSchema(args []string) int {
	fs := flag.NewFlagSet("schema", flag.ContinueOnError)
	image := fs.String("image", "", "FileDescriptorSet or buf image (binary), e.g. from `buf build -o FILE`")
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	if *image == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: opamp-interop schema -image FILE")
		return 2
	}
	ours, err := loadOurs(*image)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schema:", err)
		return 1
	}
	theirs := []protoreflect.FileDescriptor{pb.File_opamp_proto, pb.File_anyvalue_proto}

	diffs, stats := compareSchemas(ours, theirs)
	unexpected := 0
	seenExpected := map[string]bool{}
	for _, d := range diffs {
		if why, ok := expectedDifferences[d]; ok {
			seenExpected[d] = true
			fmt.Printf("expected difference: %s (%s)\n", d, why)
			continue
		}
		unexpected++
		fmt.Printf("DIFFERENCE: %s\n", d)
	}
	for d := range expectedDifferences {
		if !seenExpected[d] {
			fmt.Printf("note: allow-listed difference no longer occurs, remove it: %s\n", d)
		}
	}
	fmt.Printf("schema: compared %d messages, %d fields, %d enums, %d enum values; %d unexpected differences, %d expected\n",
		stats.messages, stats.fields, stats.enums, stats.values, unexpected, len(diffs)-unexpected)
	if unexpected > 0 {
		return 1
	}
	return 0
}

// loadOurs reads a FileDescriptorSet. A buf image (buf.alpha.image.v1.Image)
// is wire-compatible with it: field 1 holds the files, and buf's extra
// ImageFile field (8042) is kept as unknown bytes, which protodesc ignores.
func loadOurs(path string) ([]protoreflect.FileDescriptor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("%s is not a FileDescriptorSet or buf image: %w", path, err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []protoreflect.FileDescriptor
	files.RangeFilesByPackage(ourPackage, func(fd protoreflect.FileDescriptor) bool {
		out = append(out, fd)
		return true
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no file of package %s", path, ourPackage)
	}
	return out, nil
}

type schemaStats struct{ messages, fields, enums, values int }

// schemaIndex is one side's messages and enums by name relative to the package
// (top-level "AgentToServer"; nested "Outer.Inner"). Map entry types are not
// listed: they are compared through the map field that owns them.
type schemaIndex struct {
	pkg      protoreflect.FullName
	messages map[string]protoreflect.MessageDescriptor
	enums    map[string]protoreflect.EnumDescriptor
}

func index(files []protoreflect.FileDescriptor) (schemaIndex, error) {
	idx := schemaIndex{messages: map[string]protoreflect.MessageDescriptor{}, enums: map[string]protoreflect.EnumDescriptor{}}
	var addEnums func(es protoreflect.EnumDescriptors)
	addEnums = func(es protoreflect.EnumDescriptors) {
		for i := 0; i < es.Len(); i++ {
			idx.enums[idx.rel(es.Get(i).FullName())] = es.Get(i)
		}
	}
	var addMessages func(ms protoreflect.MessageDescriptors)
	addMessages = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			md := ms.Get(i)
			if md.IsMapEntry() {
				continue
			}
			idx.messages[idx.rel(md.FullName())] = md
			addMessages(md.Messages())
			addEnums(md.Enums())
		}
	}
	for _, f := range files {
		if idx.pkg == "" {
			idx.pkg = f.Package()
		} else if idx.pkg != f.Package() {
			return idx, fmt.Errorf("files of two packages: %s and %s", idx.pkg, f.Package())
		}
		addMessages(f.Messages())
		addEnums(f.Enums())
	}
	return idx, nil
}

func (s schemaIndex) rel(n protoreflect.FullName) string {
	return strings.TrimPrefix(string(n), string(s.pkg)+".")
}

func compareSchemas(oursFiles, theirsFiles []protoreflect.FileDescriptor) ([]string, schemaStats) {
	var diffs []string
	var st schemaStats
	ours, err := index(oursFiles)
	if err != nil {
		return []string{"ours: " + err.Error()}, st
	}
	theirs, err := index(theirsFiles)
	if err != nil {
		return []string{"opamp-go: " + err.Error()}, st
	}
	if ours.pkg != theirs.pkg {
		diffs = append(diffs, fmt.Sprintf("package: ours %q, opamp-go %q", ours.pkg, theirs.pkg))
	}

	for _, name := range unionKeys(ours.messages, theirs.messages) {
		om, oOK := ours.messages[name]
		tm, tOK := theirs.messages[name]
		switch {
		case !tOK:
			diffs = append(diffs, fmt.Sprintf("message %s: only in ours", name))
			continue
		case !oOK:
			diffs = append(diffs, fmt.Sprintf("message %s: only in opamp-go", name))
			continue
		}
		st.messages++
		diffs = append(diffs, compareMessage(name, om, ours, tm, theirs, &st)...)
	}
	for _, name := range unionKeys(ours.enums, theirs.enums) {
		oe, oOK := ours.enums[name]
		te, tOK := theirs.enums[name]
		switch {
		case !tOK:
			diffs = append(diffs, fmt.Sprintf("enum %s: only in ours", name))
			continue
		case !oOK:
			diffs = append(diffs, fmt.Sprintf("enum %s: only in opamp-go", name))
			continue
		}
		st.enums++
		diffs = append(diffs, compareEnum(name, oe, te, &st)...)
	}
	return diffs, st
}

func compareMessage(name string, om protoreflect.MessageDescriptor, ours schemaIndex, tm protoreflect.MessageDescriptor, theirs schemaIndex, st *schemaStats) []string {
	var diffs []string
	byNumber := func(md protoreflect.MessageDescriptor) map[protoreflect.FieldNumber]protoreflect.FieldDescriptor {
		m := map[protoreflect.FieldNumber]protoreflect.FieldDescriptor{}
		for i := 0; i < md.Fields().Len(); i++ {
			m[md.Fields().Get(i).Number()] = md.Fields().Get(i)
		}
		return m
	}
	of, tf := byNumber(om), byNumber(tm)
	nums := map[protoreflect.FieldNumber]bool{}
	for n := range of {
		nums[n] = true
	}
	for n := range tf {
		nums[n] = true
	}
	sorted := make([]int, 0, len(nums))
	for n := range nums {
		sorted = append(sorted, int(n))
	}
	sort.Ints(sorted)
	for _, n := range sorted {
		o, oOK := of[protoreflect.FieldNumber(n)]
		t, tOK := tf[protoreflect.FieldNumber(n)]
		switch {
		case !tOK:
			diffs = append(diffs, fmt.Sprintf("field %s.%s = %d: only in ours", name, o.Name(), n))
			continue
		case !oOK:
			diffs = append(diffs, fmt.Sprintf("field %s.%s = %d: only in opamp-go", name, t.Name(), n))
			continue
		}
		st.fields++
		oDesc, tDesc := describeField(o, ours), describeField(t, theirs)
		for _, k := range fieldAspects {
			if oDesc[k] != tDesc[k] {
				diffs = append(diffs, fmt.Sprintf("field %s.%s = %d: %s: ours %q, opamp-go %q", name, o.Name(), n, k, oDesc[k], tDesc[k]))
			}
		}
	}
	// Reserved numbers and names protect against reuse; report drift there too.
	if a, b := reservedString(om), reservedString(tm); a != b {
		diffs = append(diffs, fmt.Sprintf("message %s: reserved: ours %q, opamp-go %q", name, a, b))
	}
	return diffs
}

// fieldAspects are compared in this order, each one by its text form.
var fieldAspects = []string{"name", "json_name", "kind", "cardinality", "type", "map", "oneof", "proto3_optional", "packed"}

func describeField(fd protoreflect.FieldDescriptor, idx schemaIndex) map[string]string {
	d := map[string]string{
		"name":            string(fd.Name()),
		"json_name":       fd.JSONName(),
		"kind":            fd.Kind().String(),
		"cardinality":     fd.Cardinality().String(),
		"type":            typeRef(fd, idx),
		"map":             "",
		"oneof":           "",
		"proto3_optional": fmt.Sprint(fd.HasOptionalKeyword()),
		"packed":          fmt.Sprint(fd.IsPacked()),
	}
	if fd.IsMap() {
		d["map"] = fmt.Sprintf("map<%s, %s>", fd.MapKey().Kind(), fieldTypeName(fd.MapValue(), idx))
		d["type"] = "" // the synthetic entry type; covered by "map"
	}
	if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
		d["oneof"] = string(od.Name())
	}
	return d
}

func typeRef(fd protoreflect.FieldDescriptor, idx schemaIndex) string {
	switch {
	case fd.Message() != nil:
		return "message " + idx.rel(fd.Message().FullName())
	case fd.Enum() != nil:
		return "enum " + idx.rel(fd.Enum().FullName())
	}
	return ""
}

func fieldTypeName(fd protoreflect.FieldDescriptor, idx schemaIndex) string {
	if r := typeRef(fd, idx); r != "" {
		return r
	}
	return fd.Kind().String()
}

func reservedString(md protoreflect.MessageDescriptor) string {
	var parts []string
	for i := 0; i < md.ReservedRanges().Len(); i++ {
		r := md.ReservedRanges().Get(i)
		parts = append(parts, fmt.Sprintf("%d-%d", r[0], r[1]-1))
	}
	for i := 0; i < md.ReservedNames().Len(); i++ {
		parts = append(parts, string(md.ReservedNames().Get(i)))
	}
	return strings.Join(parts, ",")
}

func compareEnum(name string, oe, te protoreflect.EnumDescriptor, st *schemaStats) []string {
	var diffs []string
	oNames, tNames := map[string]protoreflect.EnumNumber{}, map[string]protoreflect.EnumNumber{}
	for i := 0; i < oe.Values().Len(); i++ {
		oNames[string(oe.Values().Get(i).Name())] = oe.Values().Get(i).Number()
	}
	for i := 0; i < te.Values().Len(); i++ {
		tNames[string(te.Values().Get(i).Name())] = te.Values().Get(i).Number()
	}
	for _, v := range unionKeys(oNames, tNames) {
		on, oOK := oNames[v]
		tn, tOK := tNames[v]
		switch {
		case !tOK:
			diffs = append(diffs, fmt.Sprintf("enum value %s.%s = %d: only in ours", name, v, on))
		case !oOK:
			diffs = append(diffs, fmt.Sprintf("enum value %s.%s = %d: only in opamp-go", name, v, tn))
		case on != tn:
			diffs = append(diffs, fmt.Sprintf("enum value %s.%s: number: ours %d, opamp-go %d", name, v, on, tn))
		default:
			st.values++
		}
	}
	return diffs
}

func unionKeys[V any](a, b map[string]V) []string {
	set := map[string]bool{}
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
