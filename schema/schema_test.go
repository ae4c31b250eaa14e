package schema

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/invopop/jsonschema"
	sjs "github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/lint"
	"github.com/octoacme/octoroll/model"
)

var update = flag.Bool("update", false, "rewrite the schema files")

const base = "https://github.com/octoacme/octoroll/schema/"

// scalars are the types written as one YAML scalar, by their text form.
func scalars(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeFor[model.Duration](), reflect.TypeFor[model.ZeroableDuration]():
		return &jsonschema.Schema{Type: "string", Pattern: `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
			Description: "a Go duration such as 500ms, 30s, 5m or 1h30m", Examples: []any{"30s", "5m"}}
	case reflect.TypeFor[model.Endpoint]():
		return &jsonschema.Schema{Type: "string", Pattern: `^(\[[0-9a-fA-F:.]+\]|[^:\s]+):[0-9]{1,5}$`,
			Description: "host:port (IPv6 in brackets)", Examples: []any{"10.0.1.10:8080", "app-v1:8090"}}
	case reflect.TypeFor[model.StatusRange]():
		return &jsonschema.Schema{OneOf: []*jsonschema.Schema{
			{Type: "integer", Minimum: "100", Maximum: "599"},
			{Type: "string", Pattern: `^[1-5][0-9]{2}(-[1-5][0-9]{2})?$`}},
			Description: "an HTTP status code or a range such as 200-299"}
	case reflect.TypeFor[controller.Share]():
		return &jsonschema.Schema{OneOf: []*jsonschema.Schema{
			{Type: "integer", Minimum: "0", Maximum: "10000", Description: "basis points out of 10000"},
			{Type: "string", Pattern: `^\s*[0-9]+(\.[0-9]+)?\s*%\s*$`, Description: "a percent such as 1%"}},
			Description: "a share of traffic: a percent string (\"1%\") or basis points out of 10000"}
	}
	return nil
}

// generate builds the schema of v's type from the Go types and their comments.
func generate(t *testing.T, v any, id, title string) []byte {
	t.Helper()
	r := &jsonschema.Reflector{FieldNameTag: "yaml", Mapper: scalars, DoNotReference: false, ExpandedStruct: true}
	for pkg, dir := range map[string]string{"model": "../model", "catalog": "../catalog", "controller": "../controller"} {
		if err := r.AddGoComments("github.com/octoacme/octoroll/"+pkg, dir); err != nil {
			t.Fatal(err)
		}
	}
	s := r.Reflect(v)
	s.ID = jsonschema.ID(base + id)
	s.Title = title
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

var schemas = []struct {
	file, title string
	v           any
	kind        string
}{
	{"catalog.schema.json", "octoroll catalog", &catalog.Catalog{}, lint.KindCatalog},
	{"rollout-spec.schema.json", "octoroll rollout spec", &controller.Spec{}, lint.KindSpec},
}

// TestSchemasUpToDate regenerates the schemas from the Go types and compares them with
// the shipped files.
func TestSchemasUpToDate(t *testing.T) {
	for _, s := range schemas {
		got := generate(t, s.v, s.file, s.title)
		if *update {
			if err := os.WriteFile(s.file, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(s.file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what the Go types generate: run go test ./schema -update", s.file)
		}
	}
}

// TestExamplesMatchSchemas validates every catalog and rollout spec shipped in
// examples/ and deploy/ against the schemas, and checks that the schemas refuse a typo.
func TestExamplesMatchSchemas(t *testing.T) {
	c := sjs.NewCompiler()
	compiled := map[string]*sjs.Schema{}
	for _, s := range schemas {
		doc, err := sjs.UnmarshalJSON(mustOpen(t, s.file))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(base+s.file, doc); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile(base + s.file)
		if err != nil {
			t.Fatalf("%s: %v", s.file, err)
		}
		compiled[s.kind] = sch
	}
	files, _ := filepath.Glob("../examples/*.yaml")
	more, _ := filepath.Glob("../examples/rollouts/*.yaml")
	deploy, _ := filepath.Glob("../deploy/*.yaml")
	files = append(append(files, more...), deploy...)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(filepath.Base(f), "docker-compose") {
			continue // compose files, not octoroll's
		}
		kind := lint.Detect(data)
		n++
		if err := compiled[kind].Validate(toJSONValue(t, data)); err != nil {
			t.Errorf("%s (%s): %v", f, kind, err)
		}
	}
	if n < 10 {
		t.Errorf("validated %d files, want the examples' and deploy's catalogs and specs", n)
	}
	bad := toJSONValue(t, []byte("service: checkout\nrelease: {type: minor}\ncanary: {version: v2, verison: v3}\n"))
	if err := compiled[lint.KindSpec].Validate(bad); err == nil {
		t.Errorf("a spec with an unknown field validates")
	}
	bad = toJSONValue(t, []byte("service: checkout\nrelease: {type: minor}\ncanary: {version: v2}\nstages: [{percent: 5, minWindow: 30}]\n"))
	if err := compiled[lint.KindSpec].Validate(bad); err == nil {
		t.Errorf("a spec with a duration without unit validates")
	}
}

func mustOpen(t *testing.T, name string) *os.File {
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// toJSONValue reads YAML into the values a JSON decoder gives (numbers as json.Number).
func toJSONValue(t *testing.T, data []byte) any {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sjs.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}
