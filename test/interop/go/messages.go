package main

// Shared by the subcommands: file naming, the two top-level message types,
// unknown-field detection and field coverage.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	pb "github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// topLevel maps the type part of NAME.<Type>.bin to a constructor.
var topLevel = map[string]func() proto.Message{
	"AgentToServer": func() proto.Message { return &pb.AgentToServer{} },
	"ServerToAgent": func() proto.Message { return &pb.ServerToAgent{} },
}

// binName matches NAME.<Type>.bin; NAME may not contain a dot.
var binName = regexp.MustCompile(`^([^.]+)\.(AgentToServer|ServerToAgent)\.bin$`)

func typeName(m proto.Message) string {
	return string(m.ProtoReflect().Descriptor().Name())
}

// jsonOut is the protojson flavour of the golden files: lowerCamelCase names
// (UseProtoNames false) and only populated fields (EmitUnpopulated false).
var jsonOut = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: false, EmitUnpopulated: false}

// message files found in a directory.
type entry struct {
	name, typ string
	binPath   string
	jsonPath  string
}

func listEntries(dir string) ([]entry, []string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var out []entry
	var problems []string
	jsons := map[string]bool{}
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".json") {
			jsons[strings.TrimSuffix(de.Name(), ".json")] = true
		}
	}
	seen := map[string]bool{}
	for _, de := range des {
		m := binName.FindStringSubmatch(de.Name())
		if m == nil {
			continue
		}
		if seen[m[1]] {
			problems = append(problems, fmt.Sprintf("%s: NAME %q used by two .bin files", de.Name(), m[1]))
			continue
		}
		seen[m[1]] = true
		out = append(out, entry{
			name: m[1], typ: m[2],
			binPath:  filepath.Join(dir, de.Name()),
			jsonPath: filepath.Join(dir, m[1]+".json"),
		})
	}
	for n := range jsons {
		if !seen[n] {
			problems = append(problems, fmt.Sprintf("%s.json: no matching NAME.<Type>.bin", n))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	sort.Strings(problems)
	return out, problems, nil
}

// unknownFields lists the paths of every message under m that carries fields
// its descriptor does not know. In bytes from our encoder that means a field
// number (or wire type) differs between our schema and opamp-go's.
func unknownFields(m protoreflect.Message, path string) []string {
	var out []string
	if u := m.GetUnknown(); len(u) > 0 {
		out = append(out, fmt.Sprintf("%s: %d bytes of unknown fields (%x)", pathOr(path, string(m.Descriptor().Name())), len(u), []byte(u)))
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := join(path, string(fd.Name()))
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				out = append(out, unknownFields(mv.Message(), fmt.Sprintf("%s[%q]", p, k.String()))...)
				return true
			})
		case fd.IsList():
			if fd.Message() == nil {
				return true
			}
			for i := 0; i < v.List().Len(); i++ {
				out = append(out, unknownFields(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))...)
			}
		case fd.Message() != nil:
			out = append(out, unknownFields(v.Message(), p)...)
		}
		return true
	})
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func pathOr(path, dflt string) string {
	if path == "" {
		return dflt
	}
	return path
}

// coverage records which fields were populated, and which enum values used,
// across a set of messages.
type coverage map[string]bool

func (c coverage) add(m protoreflect.Message) {
	md := m.Descriptor()
	// Enum fields count even when unpopulated: the zero value in a present
	// message is a real use of that value (CommandType_Restart = 0 is the only
	// value of its enum, so ServerToAgentCommand.type is never on the wire).
	// Whether every value of the enum was used is checked separately.
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.EnumKind && !fd.IsList() && !fd.IsMap() {
			c[string(md.Name())+"."+string(fd.Name())] = true
			c[enumKey(fd.Enum(), m.Get(fd).Enum())] = true
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		c[string(md.Name())+"."+string(fd.Name())] = true
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					c.add(mv.Message())
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					c.add(v.List().Get(i).Message())
				}
			}
		case fd.Message() != nil:
			c.add(v.Message())
		}
		return true
	})
}

func enumKey(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	return fmt.Sprintf("%s=%d", ed.Name(), n)
}

// missing returns every field of every message reachable from roots that no
// recorded message populated, and every value of every enum used as a field
// type that no recorded message used.
func (c coverage) missing(roots ...protoreflect.MessageDescriptor) []string {
	var out []string
	visited := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if visited[md.FullName()] {
			return
		}
		visited[md.FullName()] = true
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			if !c[string(md.Name())+"."+string(fd.Name())] {
				out = append(out, fmt.Sprintf("field %s.%s never populated", md.Name(), fd.Name()))
			}
			target := fd
			if fd.IsMap() {
				target = fd.MapValue()
			}
			if target.Message() != nil {
				walk(target.Message())
			}
			if target.Enum() != nil {
				vals := target.Enum().Values()
				for j := 0; j < vals.Len(); j++ {
					if !c[enumKey(target.Enum(), vals.Get(j).Number())] {
						out = append(out, fmt.Sprintf("enum value %s never used", vals.Get(j).Name()))
					}
				}
			}
		}
	}
	for _, r := range roots {
		walk(r)
	}
	sort.Strings(out)
	return dedupe(out)
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func rootDescriptors() []protoreflect.MessageDescriptor {
	return []protoreflect.MessageDescriptor{
		(&pb.AgentToServer{}).ProtoReflect().Descriptor(),
		(&pb.ServerToAgent{}).ProtoReflect().Descriptor(),
	}
}
