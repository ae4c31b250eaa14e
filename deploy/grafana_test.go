package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/octoacme/octoroll/internal/etcdtest"
	"github.com/octoacme/octoroll/metrics/promtest"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// dashboard is the part of Grafana's dashboard JSON model the test reads.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// query is one PromQL expression of the dashboard and where it is.
type query struct{ where, expr string }

// loadDashboard reads deploy/grafana/octoroll.json, rejecting unknown structure
// mistakes a hand edit makes: it must be one JSON object, a dashboard with a uid, a
// title, a schema version, panels with unique ids inside the 24-column grid, every
// query panel on the ${datasource} variable.
func loadDashboard(t *testing.T) (dashboard, []query) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("grafana", "octoroll.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/octoroll.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 || len(d.Panels) == 0 {
		t.Fatalf("grafana/octoroll.json: uid %q title %q schemaVersion %d, %d panels: not a dashboard model", d.UID, d.Title, d.SchemaVersion, len(d.Panels))
	}
	var qs []query
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if p.Title == "" || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %d %q: gridPos %+v outside the 24-column grid, or no title", p.ID, p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want prometheus ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			qs = append(qs, query{fmt.Sprintf("annotation %q", a.Name), a.Expr})
		}
	}
	return d, qs
}

// grafanaVars replaces the dashboard's variables with values Prometheus parses: the
// interval variables with a duration, any other ($service) with a name that is no
// metric, so a variable outside a label matcher fails the metric name check.
var grafanaVars = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{?[a-zA-Z_]\w*\}?`)

func substitute(expr string) string {
	return grafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		if strings.HasPrefix(v, "$__") {
			return "5m"
		}
		return "grafana_variable"
	})
}

// formatQuery has Prometheus parse expr (/api/v1/format_query answers the expression
// in its canonical form, or the parser's error).
func formatQuery(t *testing.T, prom, expr string) (string, error) {
	t.Helper()
	resp, err := http.PostForm(prom+"/api/v1/format_query", url.Values{"query": {expr}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status, Data, Error string
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("format_query: %v: %s", err, b)
	}
	if out.Status != "success" {
		return "", fmt.Errorf("%s", out.Error)
	}
	return out.Data, nil
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	nameMatcher  = regexp.MustCompile(`__name__\s*=\s*("(?:[^"\\]|\\.)*")`)
	labelLists   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	braces       = regexp.MustCompile(`\{[^}]*\}`)
	brackets     = regexp.MustCompile(`\[[^\]]*\]`)
	identifier   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = []string{"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN"}
)

// metricNames returns the metric names a canonical PromQL expression (format_query's
// answer) selects: identifiers outside strings, label matchers, ranges and grouping
// lists that are neither a function or aggregation (followed by "(") nor a keyword,
// and the values of __name__ matchers.
func metricNames(canonical string) []string {
	var names []string
	for _, m := range nameMatcher.FindAllStringSubmatch(canonical, -1) {
		var s string
		if json.Unmarshal([]byte(m[1]), &s) == nil {
			names = append(names, s)
		}
	}
	s := promString.ReplaceAllString(canonical, `""`)
	s = braces.ReplaceAllString(s, " ")
	s = brackets.ReplaceAllString(s, " ")
	s = labelLists.ReplaceAllString(s, " ")
	for _, loc := range identifier.FindAllStringIndex(s, -1) {
		if loc[0] > 0 && strings.ContainsAny(s[loc[0]-1:loc[0]], "0123456789.") {
			continue // the exponent or unit of a number (1e3, 5m)
		}
		word := s[loc[0]:loc[1]]
		if slices.Contains(promKeywords, word) || strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " "), "(") {
			continue
		}
		names = append(names, word)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (service, reason) (increase(octoroll_rollbacks_total{service=~"a|b"}[5m])) > 0`:                      {"octoroll_rollbacks_total"},
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m] offset 1h)))`:                                       {"x_bucket"},
		`a / on (service) group_left (version) b or vector(1e3)`:                                                     {"a", "b"},
		`label_replace(up, "dst", "$1", "src", "(.*)") and {__name__="octoroll_leader"}`:                             {"octoroll_leader", "up"},
		`count(octoroll_service_publish_ok{service=~"grafana_variable"} == 0) or vector(0)`:                          {"octoroll_service_publish_ok"},
		`time() - octoroll_rollout_paused_since_seconds`:                                                             {"octoroll_rollout_paused_since_seconds"},
		`max without (instance) (octoroll_replica_proxies) unless octoroll_leader == bool 0`:                         {"octoroll_leader", "octoroll_replica_proxies"},
		`sort_desc(sum by (decision, reason) (increase(octoroll_decisions_total{service=~"grafana_variable"}[5m])))`: {"octoroll_decisions_total"},
	} {
		got := metricNames(expr)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %v, want %v", expr, got, want)
		}
	}
}

// TestGrafanaDashboard checks deploy/grafana/octoroll.json: a dashboard model, every
// query parsed by a real Prometheus, and every metric it reads present on the /metrics
// of a real octoroll: the binary on a real etcd (so the replica metrics are there),
// with a real gRPC xDS client and application metrics it scrapes, driven through a
// rollout until its checks are judged and it is paused.
func TestGrafanaDashboard(t *testing.T) {
	d, queries := loadDashboard(t)
	var service bool
	for _, v := range d.Templating.List {
		if v.Name == "service" {
			service = true
			q, _ := json.Marshal(v.Query)
			if !strings.Contains(string(q), "label_values(octoroll_canary_weight, service)") {
				t.Errorf("variable service: query %s, want label_values(octoroll_canary_weight, service)", q)
			}
		}
	}
	if !service {
		t.Error("no variable service")
	}
	for _, want := range []string{"octoroll_canary_weight", "octoroll_decisions_total", "octoroll_check_error_ratio",
		"octoroll_check_p99_seconds", "octoroll_proxies_converged", "octoroll_xds_nacks_total", "octoroll_leader", "octoroll_replica_proxies"} {
		if !slices.ContainsFunc(queries, func(q query) bool { return strings.Contains(q.expr, want) }) {
			t.Errorf("no query reads %s", want)
		}
	}

	prom := promtest.Start(t, nil)
	used := map[string][]string{} // metric name → where
	for _, q := range queries {
		canonical, err := formatQuery(t, prom, substitute(q.expr))
		if err != nil {
			t.Errorf("%s: Prometheus does not parse %s: %v", q.where, q.expr, err)
			continue
		}
		names := metricNames(canonical)
		if len(names) == 0 {
			t.Errorf("%s: %s reads no metric", q.where, q.expr)
		}
		for _, n := range names {
			used[n] = append(used[n], q.where)
		}
	}
	used["octoroll_canary_weight"] = append(used["octoroll_canary_weight"], "variable service")

	exposed := realMetrics(t)
	for name, where := range used {
		if !exposed[name] {
			t.Errorf("%s is not on octoroll's /metrics (used by %s)", name, strings.Join(where, ", "))
		}
	}
	t.Logf("%d queries, %d metric names, all on the real /metrics", len(queries), len(used))
}

// realMetrics runs the real octoroll through a rollout and returns the names of the
// series on its /metrics (a histogram's _bucket, _sum and _count included).
func realMetrics(t *testing.T) map[string]bool {
	t.Helper()
	bin := buildOctoroll(t)
	etcd := etcdtest.Start(t)
	const svc = "web"
	dir := t.TempDir()
	catalogFile := filepath.Join(dir, "catalog.yaml")
	cat := fmt.Sprintf(`services:
  - name: %s
    port: 10001
    stable: v1
    metrics: {convention: app}
    versions:
      - name: v1
        endpoints: [%s]
        metrics: [%s]
      - name: v2
        endpoints: [%s]
        metrics: [%s]
`, svc, xdstest.StartBackend(t, "v1"), appMetrics(t, svc, "v1"), xdstest.StartBackend(t, "v2"), appMetrics(t, svc, "v2"))
	if err := os.WriteFile(catalogFile, []byte(cat), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startOctoroll(t, bin, catalogFile, "-store", "etcd", "-etcd-endpoints", etcd.Endpoint, "-replica-id", "r1",
		"-lease-ttl", "2s", "-scrape-interval", "200ms", "-metrics-window", "1s")
	poll(t, "the replica leading", func() bool { return strings.Contains(p.get(t, "/metrics"), "\noctoroll_leader 1\n") })
	xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "dashboard-client", Target: "xds:///" + svc, RPS: 50})

	p.post(t, "/rollouts", map[string]any{
		"service":       svc,
		"release":       map[string]any{"name": "web 1.1", "type": "minor", "summary": "dashboard test", "rollbackPlan": "back to v1"},
		"canary":        map[string]any{"version": "v2"},
		"stages":        []map[string]any{{"percent": 50, "minWindow": "1h"}},
		"checkInterval": "1s",
		"thresholds":    map[string]any{"minRequests": 10},
		"waivers":       []map[string]any{{"item": "smokeTests", "reason": "no smoke test in the dashboard test", "by": "deploy-test"}},
	})
	poll(t, "a judged check on /metrics", func() bool {
		m := p.get(t, "/metrics")
		return strings.Contains(m, "octoroll_check_p99_seconds{") && strings.Contains(m, `octoroll_decisions_total{`)
	})
	p.post(t, "/services/"+svc+"/pause", map[string]any{"reason": "dashboard test"})
	text := p.get(t, "/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	names := map[string]bool{}
	for name, f := range families {
		if len(f.GetMetric()) == 0 {
			continue
		}
		names[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	if !names["octoroll_rollout_paused_since_seconds"] {
		t.Errorf("paused rollout, but no octoroll_rollout_paused_since_seconds:\n%s", text)
	}
	if want := fmt.Sprintf(`octoroll_build_info{goversion=%q,version=%q} 1`, goVersion(families), stampedVersion); !strings.Contains(text, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	return names
}

// goVersion returns the goversion label of octoroll_build_info.
func goVersion(families map[string]*dto.MetricFamily) string {
	for _, m := range families["octoroll_build_info"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "goversion" {
				return l.GetValue()
			}
		}
	}
	return ""
}
