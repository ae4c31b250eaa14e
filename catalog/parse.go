package catalog

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem in a catalog, with the place it was found.
type FieldError struct {
	File   string // as given to Parse; empty for a catalog built in code
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	// Path is the field, such as services[1].versions[0].endpoints[2]; empty for the
	// file as a whole.
	Path string
	Msg  string
}

// Error formats e as FILE:LINE:COL: PATH: MSG, leaving out the parts that are unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" || e.Line > 0 {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
			if e.Column > 0 {
				b.WriteString(":" + strconv.Itoa(e.Column))
			}
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and parses the catalog file at path. Errors name the file as path was
// written.
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a catalog. name is the file name used in error messages.
// Decoding is strict: unknown fields, duplicate keys, wrong types and several YAML
// documents are errors. Every problem found is reported (joined with errors.Join, each a
// *FieldError naming name:line:column and the field), sorted by position. On success the
// defaults are applied (see ApplyDefaults). Parse never panics.
func Parse(name string, data []byte) (*Catalog, error) {
	if name == "" {
		name = "catalog"
	}
	root, ferr := parseYAML(name, data)
	if ferr != nil {
		return nil, ferr
	}
	d := &decoder{file: name, pos: map[string]position{}, bad: map[string]bool{}}
	var c Catalog
	if root == nil || isNull(root) {
		d.addAt(position{1, 1}, "", "no services: the catalog is empty")
		return nil, d.err()
	}
	d.decode(root, reflect.ValueOf(&c).Elem(), "")
	if d.bad[""] {
		// Not a mapping at all: nothing else is worth saying.
		return nil, d.err()
	}
	v := validator{file: name, pos: d.pos, bad: d.bad, present: true}
	v.catalog(&c)
	d.errs = append(d.errs, v.errs...)
	if err := d.err(); err != nil {
		return nil, err
	}
	c.ApplyDefaults()
	return &c, nil
}

// Document is a YAML file decoded by Decode: it places a field path, such as
// stages[1].minWindow, at the line and column the file wrote it.
type Document struct {
	file string
	pos  map[string]position
	bad  map[string]bool
}

// Decode decodes one YAML document (or JSON, which is YAML) into v, a pointer to a
// struct, by the strict rules of Parse: unknown fields, duplicate keys, wrong types and
// several documents are errors, each a *FieldError naming name:line:column and the
// field (joined with errors.Join). Fields follow the yaml struct tags; types with
// UnmarshalText take a scalar. It is the decoder of the catalog, for the other files
// octoroll reads (rollout specs). Decode never panics.
func Decode(name string, data []byte, v any) (*Document, error) {
	root, ferr := parseYAML(name, data)
	if ferr != nil {
		return nil, ferr
	}
	d := &decoder{file: name, pos: map[string]position{}, bad: map[string]bool{}}
	doc := &Document{file: name, pos: d.pos, bad: d.bad}
	if root == nil || isNull(root) {
		d.addAt(position{1, 1}, "", "the file is empty")
		return doc, d.err()
	}
	d.decode(root, reflect.ValueOf(v).Elem(), "")
	return doc, d.err()
}

// At places a problem found after decoding at the field path (the nearest enclosing
// field the file wrote when path itself is absent); nil when path failed to decode,
// since Decode reported it already.
func (doc *Document) At(path, msg string) *FieldError {
	v := validator{file: doc.file, pos: doc.pos, bad: doc.bad, present: true}
	v.add(path, "%s", msg)
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs[0].(*FieldError)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML returns the single document's content node (nil for an empty file).
func parseYAML(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &FieldError{File: name, Line: extra.Line, Column: extra.Column,
			Msg: "a second YAML document: a catalog is one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, err)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

func syntaxError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FieldError{File: name, Line: line, Msg: "YAML syntax: " + m[2]}
	}
	return &FieldError{File: name, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

type position struct{ line, col int }

// maxNodes bounds the work of one decode: aliases may make a small file expand into an
// enormous tree.
const maxNodes = 200_000

// decoder walks the YAML tree into the model by reflection over the yaml struct tags,
// recording the position of every field path it sees so that validation can name it.
type decoder struct {
	file   string
	errs   []error
	pos    map[string]position
	bad    map[string]bool // paths that failed to decode; validation stays silent on them
	nodes  int
	tooBig bool
}

func (d *decoder) addAt(p position, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{File: d.file, Line: p.line, Column: p.col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.bad[path] = true
	d.addAt(position{n.Line, n.Column}, path, format, args...)
}

func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	sortErrors(d.errs)
	return errors.Join(d.errs...)
}

func sortErrors(errs []error) {
	slices.SortStableFunc(errs, func(a, b error) int {
		var fa, fb *FieldError
		errors.As(a, &fa)
		errors.As(b, &fb)
		if fa == nil || fb == nil {
			return 0
		}
		return cmp.Or(cmp.Compare(fa.Line, fb.Line), cmp.Compare(fa.Column, fb.Column))
	})
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.tooBig {
		return
	}
	if d.nodes++; d.nodes > maxNodes {
		d.tooBig = true
		d.fail(n, path, "the document is too large (more than %d nodes after expanding aliases)", maxNodes)
		return
	}
	for depth := 0; n.Kind == yaml.AliasNode; depth++ {
		if n.Alias == nil || depth > 100 {
			d.fail(n, path, "unresolvable alias")
			return
		}
		n = n.Alias
	}
	if isNull(n) {
		// An empty value ("healthCheck:") leaves the field unset.
		return
	}
	d.pos[path] = position{n.Line, n.Column}
	if v.CanAddr() {
		if ok, err := decodeScalar(n, v.Addr().Interface()); ok {
			if err != nil {
				d.fail(n, path, "%s", err.Error())
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "want a list, got %s", describe(n))
			return
		}
		if len(n.Content) == 0 {
			// Leave it nil, as an absent field is, so that catalogs compare equal.
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.fail(n, path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.fail(n, path, "want a whole number, got %s", describe(n))
			return
		}
		if i < 0 || v.OverflowUint(uint64(i)) {
			d.fail(n, path, "%d is out of range 0-%d", i, uint64(math.MaxUint64)>>(64-v.Type().Bits()))
			return
		}
		v.SetUint(uint64(i))
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.fail(n, path, "want a whole number, got %s", describe(n))
			return
		}
		if v.OverflowInt(i) {
			d.fail(n, path, "%d is out of range", i)
			return
		}
		v.SetInt(i)
	case reflect.Map:
		if n.Kind != yaml.MappingNode || v.Type().Key().Kind() != reflect.String {
			d.fail(n, path, "want a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			sub := path + "." + k.Value
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				d.fail(k, path, "unsupported key %s (merge keys and complex keys are not allowed)", describe(k))
				continue
			}
			if line, dup := seen[k.Value]; dup {
				d.fail(k, sub, "duplicate key (first at line %d)", line)
				continue
			}
			seen[k.Value] = k.Line
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, sub)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	case reflect.Pointer:
		// Optional values (a check's bounds): allocate, then decode the element.
		elem := reflect.New(v.Type().Elem())
		before := len(d.errs)
		d.decode(n, elem.Elem(), path)
		if len(d.errs) == before {
			v.Set(elem)
		}
	case reflect.Bool:
		// Only true and false: YAML 1.1's yes/no/on/off are strings to yaml.v3, and a
		// quoted "true" is a string too.
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.fail(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(n.Value == "true")
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&f) != nil {
			d.fail(n, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		// Only reachable if the model gains a field of a kind not handled above.
		d.fail(n, path, "cannot decode into %s", v.Type())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping, got %s", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			d.addAt(position{k.Line, k.Column}, path, "unsupported key %s (merge keys and complex keys are not allowed)", describe(k))
			continue
		}
		sub := k.Value
		if path != "" {
			sub = path + "." + k.Value
		}
		if line, dup := seen[k.Value]; dup {
			d.fail(k, sub, "duplicate key (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := fields[k.Value]
		if !ok {
			hint := ""
			if k.Value == "weight" || k.Value == "weights" {
				hint = "; weights are not part of the catalog, rollouts set them"
			}
			d.fail(k, sub, "unknown field %q (known: %s)%s", k.Value, strings.Join(fieldNames(v.Type()), ", "), hint)
			continue
		}
		d.decode(val, v.Field(idx), sub)
	}
}

// yamlFields maps the yaml names of t's fields to their indexes.
func yamlFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			out[name] = i
		}
	}
	return out
}

func fieldNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			out = append(out, name)
		}
	}
	return out
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" {
		return ""
	}
	if tag == "" {
		return strings.ToLower(f.Name)
	}
	return tag
}
