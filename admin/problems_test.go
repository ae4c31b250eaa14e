package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
)

// searchCatalog is testCatalog with a third service whose endpoint is a DNS name that
// does not resolve (see noSearchDNS).
const searchCatalog = testCatalog + `  - name: search
    port: 10002
    stable: v1
    versions:
      - name: v1
        endpoints: ["search.internal:9005"]
`

// noSearchDNS resolves every name but search.internal.
type noSearchDNS struct{}

func (noSearchDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host == "search.internal" {
		return nil, errors.New("lookup search.internal: no such host")
	}
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// TestProblemsShown: a service whose desired state is not published, and a catalog on
// disk that the runner refuses (it drops the version of an active rollout), show in
// GET /api/v1/services, GET /api/v1/status, the status page and the metrics, with the
// real runner and the real catalog watcher; the refused catalog is applied once the
// rollout that blocked it is aborted and the file is reloaded (SIGHUP).
func TestProblemsShown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(path, []byte(searchCatalog), 0o644); err != nil {
		t.Fatal(err)
	}
	var w *catalog.Watcher
	f := newFixture(t, fixtureOpts{catalog: searchCatalog, resolver: noSearchDNS{},
		catalogStatus: func() catalog.Status { return w.Status() }})
	w, err := catalog.NewWatcher(path, zaptest.NewLogger(t), func(c *catalog.Catalog) error {
		return f.runner.SetCatalog(context.Background(), c)
	})
	if err != nil {
		t.Fatal(err)
	}
	f.admin.Metrics().Publication("search", false) // as the publish_failed event does

	// Publication failure, per service.
	svcs := decode[api.ServicesResponse](t, f.do(t, get("/api/v1/services")))
	var search *api.ServiceSummary
	for i := range svcs.Services {
		if s := &svcs.Services[i]; s.Name == "search" {
			search = s
		} else if s.Publication != nil && !s.Publication.OK {
			t.Errorf("service %s reported failing: %+v", s.Name, s.Publication)
		}
	}
	if search == nil || search.Publication == nil || search.Publication.OK ||
		!strings.Contains(search.Publication.Error, "search.internal") || search.Publication.FailingSince.IsZero() {
		t.Fatalf("search in /api/v1/services: %+v", search)
	}
	if svcs.Catalog == nil || svcs.Catalog.State() != "loaded" {
		t.Errorf("catalog in /api/v1/services: %+v", svcs.Catalog)
	}
	st := decode[api.StatusResponse](t, f.do(t, get("/api/v1/status")))
	if len(st.PublishFailures) != 1 || st.PublishFailures[0].Service != "search" {
		t.Errorf("status publish failures %+v, want search alone", st.PublishFailures)
	}
	page := string(f.do(t, get("/")).body)
	if i := strings.Index(page, `data-service="search"`); i < 0 || !strings.Contains(page[i:], "not published") ||
		!strings.Contains(page[i:], "search.internal: no such host") {
		t.Errorf("status page does not show search failing:\n%s", page)
	}
	metrics := string(f.do(t, get("/metrics")).body)
	for _, want := range []string{
		`octoroll_publish_failures_total{service="search"} 1`,
		`octoroll_service_publish_ok{service="search"} 0`,
		`octoroll_config_refused 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A rollout of checkout to v2, then a catalog without v2: refused, not loaded.
	expect(t, "start", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: testSpecJSON}), 201, "")
	dropV2 := strings.Replace(searchCatalog, `      - name: v2
        endpoints: ["127.0.0.1:9002"]
`, "", 1)
	if err := os.WriteFile(path, []byte(dropV2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(); err == nil {
		t.Fatal("a catalog dropping the active rollout's canary was applied")
	}
	const why = "service checkout has active rollout"
	st = decode[api.StatusResponse](t, f.do(t, get("/api/v1/status")))
	if !strings.HasPrefix(st.Catalog.State(), "refused: "+why) || st.Catalog.Generation != 1 {
		t.Errorf("status catalog %+v, want refused at generation 1", st.Catalog)
	}
	var raw struct {
		Catalog struct{ State string }
	}
	if err := json.Unmarshal(f.do(t, get("/api/v1/status")).body, &raw); err != nil || !strings.HasPrefix(raw.Catalog.State, "refused: "+why) {
		t.Errorf("status JSON catalog.state %q (%v), want the refusal in words", raw.Catalog.State, err)
	}
	svcs = decode[api.ServicesResponse](t, f.do(t, get("/api/v1/services")))
	if svcs.Catalog == nil || !strings.HasPrefix(svcs.Catalog.State(), "refused: "+why) {
		t.Errorf("catalog in /api/v1/services: %+v", svcs.Catalog)
	}
	if page := string(f.do(t, get("/")).body); !strings.Contains(page, "Catalog refused") || !strings.Contains(page, why) {
		t.Errorf("status page does not show the refused catalog:\n%s", page)
	}
	if m := string(f.do(t, get("/metrics")).body); !strings.Contains(m, "octoroll_config_refused 1") ||
		!strings.Contains(m, "octoroll_config_reload_errors_total 1") {
		t.Errorf("metrics after the refusal:\n%s", grepLines(m, "octoroll_config_"))
	}

	// The rollout ends; the same file is applied on the next reload.
	if _, err := f.runner.Command(context.Background(), "checkout",
		controller.Command{Kind: controller.CmdAbort, Actor: "bob", Reason: "catalog change"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(); err != nil {
		t.Fatalf("reload after the rollout ended: %v", err)
	}
	st = decode[api.StatusResponse](t, f.do(t, get("/api/v1/status")))
	if st.Catalog.State() != "loaded" || st.Catalog.Generation != 2 {
		t.Errorf("status catalog after the rollout ended %+v", st.Catalog)
	}
	if m := string(f.do(t, get("/metrics")).body); !strings.Contains(m, "octoroll_config_refused 0") {
		t.Errorf("metrics after applying:\n%s", grepLines(m, "octoroll_config_"))
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func get(path string) req { return req{method: "GET", path: path} }
