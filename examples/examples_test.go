// Package examples holds the example catalogs and rollout specs; its test checks that
// each passes octoroll's own validation.
package examples

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
)

func TestCatalogsValidate(t *testing.T) {
	for _, f := range []string{"catalog.yaml", "catalog-checkout.yaml", "../deploy/catalog.yaml"} {
		if _, err := catalog.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestRolloutSpecsValidate decodes every spec strictly and runs pre-flight against the
// catalog it names: the same path as `octoroll rollout start -f`.
func TestRolloutSpecsValidate(t *testing.T) {
	files, err := filepath.Glob("rollouts/*.yaml")
	if err != nil || len(files) < 7 {
		t.Fatalf("rollout specs: %v, %d files", err, len(files))
	}
	cats := map[string]*catalog.Catalog{}
	for _, name := range []string{"catalog.yaml", "catalog-checkout.yaml"} {
		c, err := catalog.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		cats[name] = c
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) // a Wednesday, inside the examples' windows
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var spec controller.Spec
			dec := yaml.NewDecoder(strings.NewReader(string(data)))
			dec.KnownFields(true)
			if err := dec.Decode(&spec); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := spec.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			catName := "catalog-checkout.yaml"
			if strings.HasPrefix(filepath.Base(f), "demo-") {
				catName = "catalog.yaml"
			}
			svc, ok := cats[catName].Service(spec.Service)
			if !ok {
				t.Fatalf("service %q not in %s", spec.Service, catName)
			}
			r, _, err := controller.New(now, "example", spec, svc)
			if err != nil {
				t.Fatalf("pre-flight: %v", err)
			}
			if r.Plan.Type != spec.Release.Type {
				t.Errorf("type %s, want %s", r.Plan.Type, spec.Release.Type)
			}
		})
	}
}
