package deps

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/octoacme/octoroll/"

// io are the packages that do I/O (or, for yaml, parse files) and must stay out of the
// pure packages.
var io = []string{
	"go.uber.org/zap",
	"github.com/fsnotify/fsnotify",
	"gopkg.in/yaml.v3",
	"net/http",
	"net",
	"os/exec",
	"go.etcd.io/bbolt",
	"go.etcd.io/etcd/client/v3",
	"google.golang.org/grpc",
	"database/sql",
}

// graph is the import graph of the dependencies of one package: importer -> imports.
type graph map[string][]string

// deps lists pkg and everything it imports (not its tests) with go list -deps.
func deps(t *testing.T, pkg string) graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+pkg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.String())
	}
	g := graph{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			g[f[0]] = f[1:]
		}
	}
	return g
}

// path returns an import chain from root to target, for the error message.
func (g graph) path(root, target string) []string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == target {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, q := range g[p] {
			if _, seen := prev[q]; !seen {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	return nil
}

// importers returns the packages in g that import target directly.
func (g graph) importers(target string) []string {
	var out []string
	for p, imps := range g {
		if slices.Contains(imps, target) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func TestImportRules(t *testing.T) {
	// generatedProto reports whether an importer is generated Envoy/xDS message code:
	// its protoc-gen-validate rules use package net to parse IP addresses (no I/O).
	// translate depends on those messages, nothing else may bring net in.
	generatedProto := func(p string) bool {
		return strings.HasPrefix(p, "github.com/envoyproxy/go-control-plane/envoy/") ||
			strings.HasPrefix(p, "github.com/cncf/xds/go/") ||
			strings.HasPrefix(p, "github.com/envoyproxy/protoc-gen-validate/") ||
			strings.HasPrefix(p, "net/") || strings.HasPrefix(p, "vendor/") || !strings.Contains(p, ".")
	}
	rules := []struct {
		pkg       string
		forbidden []string
		// allowed reports whether importer may import forbidden package f.
		allowed func(importer, f string) bool
	}{
		{pkg: "model", forbidden: io},
		{pkg: "controller", forbidden: append(slices.Clone(io), mod+"catalog", mod+"xds", mod+"translate", mod+"store", mod+"runner",
			mod+"publish", mod+"admin", mod+"notify", mod+"report", mod+"metrics", mod+"healthcheck", mod+"smoke")},
		{pkg: "translate", forbidden: append(slices.Clone(io), mod+"catalog", mod+"controller", mod+"xds", mod+"store", mod+"runner"),
			allowed: func(importer, f string) bool { return f == "net" && generatedProto(importer) }},
		{pkg: "catalog", forbidden: []string{mod + "controller", mod + "xds", mod + "translate", mod + "runner"}},
		{pkg: "xds", forbidden: []string{mod + "controller", mod + "runner", mod + "store"}},
		// publish serves each service from plain data: the catalog loader (and its
		// file watching), the engine, the loop, storage and the API stay above it.
		{pkg: "publish", forbidden: []string{mod + "catalog", mod + "controller", mod + "runner", mod + "store", mod + "admin",
			mod + "admin/api", mod + "notify", mod + "report", "github.com/fsnotify/fsnotify", "gopkg.in/yaml.v3", "go.etcd.io/bbolt"}},
		// The admin API's wire types and the CLI speak the API, never the server: no
		// octoroll package that serves, stores or watches, and no I/O but the CLI's
		// own HTTP client.
		{pkg: "admin/api", forbidden: append(slices.Clone(io), mod+"admin", mod+"runner", mod+"xds", mod+"store", mod+"catalog", mod+"publish"),
			allowed: func(importer, f string) bool { return f == "net" && generatedProto(importer) }},
		{pkg: "cli", forbidden: []string{mod + "admin", mod + "runner", mod + "xds", mod + "store", mod + "catalog", mod + "publish",
			"go.uber.org/zap", "github.com/fsnotify/fsnotify", "go.etcd.io/bbolt", "google.golang.org/grpc"}},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			t.Parallel()
			g := deps(t, r.pkg)
			for _, f := range r.forbidden {
				if _, ok := g[f]; !ok {
					continue
				}
				for _, imp := range g.importers(f) {
					if r.allowed != nil && r.allowed(imp, f) {
						continue
					}
					t.Errorf("%s imports %s: %s", r.pkg, f, strings.Join(g.path(mod+r.pkg, imp), " -> ")+" -> "+f)
				}
			}
		})
	}
	// The CLI speaks the API: of the admin packages it may import the wire types only.
	t.Run("cli imports no admin server package", func(t *testing.T) {
		t.Parallel()
		g := deps(t, "cli")
		for p := range g {
			if (p == mod+"admin" || strings.HasPrefix(p, mod+"admin/")) && p != mod+"admin/api" {
				t.Errorf("cli imports %s: %s", p, strings.Join(g.path(mod+"cli", p), " -> "))
			}
		}
	})
	// model is the bottom of octoroll's own packages: the standard library only.
	t.Run("model imports only the standard library", func(t *testing.T) {
		t.Parallel()
		for p := range deps(t, "model") {
			if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") && p != mod+"model" {
				t.Errorf("model depends on %s", p)
			}
		}
	})
}
