package catalog

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// Each row names a file under testdata/bad and the position, field and message its
// first error must carry. An empty field means the problem concerns the whole file.
var badCatalogs = []struct {
	file  string
	line  int
	col   int // 0 where YAML syntax errors give no column
	field string
	msg   string
}{
	{"empty.yaml", 1, 1, "", "no services"},
	{"comments-only.yaml", 1, 1, "", "no services"},
	{"no-services.yaml", 1, 11, "services", "no services"},
	{"not-a-mapping.yaml", 1, 1, "", "want a mapping, got a sequence"},
	{"unknown-field.yaml", 8, 5, "services[0].healthcheck", `unknown field "healthcheck"`},
	{"weights.yaml", 7, 9, "services[0].versions[0].weight", "weights are not part of the catalog"},
	{"wrong-type-port.yaml", 3, 11, "services[0].port", `want a whole number, got "10080"`},
	{"wrong-type-versions.yaml", 6, 7, "services[0].versions", "want a list, got a mapping"},
	{"negative-number.yaml", 9, 23, "services[0].outlierDetection.consecutive5xx", "-1 is out of range"},
	{"duplicate-key.yaml", 5, 5, "services[0].port", "duplicate key (first at line 3)"},
	{"two-documents.yaml", 8, 1, "", "a second YAML document"},
	{"tab.yaml", 2, 0, "", "YAML syntax: found a tab character"},
	{"syntax.yaml", 2, 0, "", "YAML syntax: did not find expected ',' or ']'"},
	{"duplicate-service.yaml", 8, 11, "services[1].name", `"checkout": duplicate service name, first declared at services[0] (line 2)`},
	{"duplicate-version.yaml", 8, 15, "services[0].versions[1].name", `"v1": duplicate version name`},
	{"duplicate-endpoint.yaml", 10, 13, "services[0].versions[0].endpoints[2]", `"10.0.0.1:8080": duplicate endpoint, also services[0].versions[0].endpoints[0]`},
	{"shared-endpoint.yaml", 9, 21, "services[0].versions[1].endpoints[0]", "endpoint also belongs to services[0].versions[0].endpoints[0]"},
	{"duplicate-domain.yaml", 10, 33, "services[1].domains[1]", `domain "shop.example.com" is also routed to services[0] (checkout)`},
	{"domain-port.yaml", 3, 15, "services[0].domains[0]", "leave out the port"},
	{"shared-port.yaml", 9, 11, "services[1].port", "port 10080 is also the port of services[0] (checkout)"},
	{"bad-service-name.yaml", 2, 11, "services[0].name", "want a DNS label"},
	{"pipe-in-version.yaml", 8, 15, "services[0].versions[1].name", "'|' is reserved"},
	{"missing-stable.yaml", 2, 5, "services[0].stable", "required"},
	{"stable-not-a-version.yaml", 4, 13, "services[0].stable", `"v0" is not one of the versions (v1)`},
	{"missing-port.yaml", 2, 5, "services[0].port", "required"},
	{"port-zero.yaml", 3, 11, "services[0].port", "0: port out of range 1-65535"},
	{"port-too-big.yaml", 3, 11, "services[0].port", "70000: port out of range 1-65535"},
	{"endpoint-port-range.yaml", 9, 13, "services[0].versions[0].endpoints[1]", `"10.0.0.1:99999": port out of range 1-65535`},
	{"endpoint-no-port.yaml", 7, 21, "services[0].versions[0].endpoints[0]", "missing port"},
	{"endpoint-ipv6-brackets.yaml", 7, 21, "services[0].versions[0].endpoints[0]", "IPv6 in brackets"},
	{"endpoint-bad-ip.yaml", 7, 21, "services[0].versions[0].endpoints[0]", `invalid IP address "10.0.0.256"`},
	{"endpoint-not-string.yaml", 8, 13, "services[0].versions[0].endpoints[0]", `want a "host:port" string, got a mapping`},
	{"no-endpoints.yaml", 6, 9, "services[0].versions[0].endpoints", "at least one endpoint"},
	{"no-versions.yaml", 2, 5, "services[0].versions", "at least one version"},
	{"health-protocol.yaml", 9, 17, "services[0].healthCheck.protocol", `"https": unknown protocol`},
	{"health-path.yaml", 10, 13, "services[0].healthCheck.path", "must start with '/'"},
	{"health-timeout.yaml", 10, 16, "services[0].healthCheck.timeout", "2s must be shorter than the interval (2s)"},
	{"health-status-range.yaml", 10, 33, "services[0].healthCheck.expectedStatuses[1]", `"299-200": the range ends before it starts`},
	{"health-status-code.yaml", 12, 11, "services[0].healthCheck.expectedStatuses[1]", `"700": want a status code (100-599)`},
	{"health-status-type.yaml", 10, 31, "services[0].healthCheck.expectedStatuses[1]", "want a status code such as 200 or a range such as \"200-299\", got a mapping"},
	{"health-status-protocol.yaml", 10, 25, "services[0].healthCheck.expectedStatuses", "only used when protocol is http (protocol is grpc)"},
	{"health-grpc-service.yaml", 10, 20, "services[0].healthCheck.grpcService", `"shop checkout": no spaces`},
	{"health-grpc-service-protocol.yaml", 9, 20, "services[0].healthCheck.grpcService", "only used when protocol is grpc (protocol is tcp)"},
	{"duration-zero.yaml", 9, 25, "services[0].outlierDetection.baseEjectionTime", `"0s": must be positive`},
	{"duration-negative.yaml", 9, 17, "services[0].healthCheck.interval", `"-5s": must be positive`},
	{"duration-no-unit.yaml", 9, 17, "services[0].healthCheck.interval", "a duration needs a unit"},
	{"threshold-zero.yaml", 9, 27, "services[0].healthCheck.unhealthyThreshold", "must be at least 1"},
	{"max-ejection.yaml", 9, 27, "services[0].outlierDetection.maxEjectionPercent", "150: must be 1-100"},
	{"query-template.yaml", 9, 18, "services[0].metrics.errorRate", "query template"},
	{"query-field.yaml", 9, 17, "services[0].metrics.requests", "Servce"},
	{"scrape-path.yaml", 9, 19, "services[0].metrics.scrapePath", "must start with '/'"},
	{"convention.yaml", 9, 19, "services[0].metrics.convention", `"istio": unknown convention, want envoy or app`},
	{"alerts-field.yaml", 9, 15, "services[0].metrics.alerts", "fields are .Service"},
	{"alerts-braces.yaml", 9, 15, "services[0].metrics.alerts", "without braces"},
	{"check-query.yaml", 11, 18, "services[0].metrics.checks[0].query", "Versoin"},
	{"check-bounds.yaml", 13, 16, "services[0].metrics.checks[0].max", "5 is less than min 10"},
	{"check-duplicate.yaml", 13, 17, "services[0].metrics.checks[1].name", `"queue": duplicate check, also checks[0]`},
	{"latency-template.yaml", 10, 19, "services[0].metrics.latencyP99", "missing value for if"},
	{"latency-buckets-template.yaml", 10, 23, "services[0].metrics.latencyBuckets", "Verison"},
	{"target-duplicate.yaml", 9, 34, "services[0].metrics.targets[1]", `"10.0.0.1:9901": duplicate target, also targets[0]`},
	{"target-port.yaml", 11, 11, "services[0].metrics.targets[1]", "port out of range 1-65535"},
	{"sink-format.yaml", 11, 13, "notifications[0].format", `"teams": unknown format`},
	{"sink-url.yaml", 10, 10, "notifications[0].url", "want an http or https URL"},
	{"proxies-optional.yaml", 4, 22, "services[0].proxiesOptional", `want true or false, got "yes"`},
	{"sink-event.yaml", 11, 23, "notifications[0].events[1]", `"rollback": unknown event`},
}

func TestLoadBad(t *testing.T) {
	for _, tc := range badCatalogs {
		t.Run(strings.TrimSuffix(tc.file, ".yaml"), func(t *testing.T) {
			path := filepath.Join("testdata", "bad", tc.file)
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", path, c)
			}
			if c != nil {
				t.Errorf("Load(%s) returned a catalog with its error", path)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q carries no *FieldError", err)
			}
			if fe.File != path || fe.Line != tc.line || fe.Column != tc.col || fe.Path != tc.field {
				t.Errorf("first error at %s:%d:%d field %q, want %s:%d:%d field %q\n%v",
					fe.File, fe.Line, fe.Column, fe.Path, path, tc.line, tc.col, tc.field, err)
			}
			if !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("first error %q, want it to contain %q", fe.Msg, tc.msg)
			}
			// The text a person reads starts with the place.
			prefix := path + ":"
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if tc.field != "" && !strings.Contains(err.Error(), ": "+tc.field+": ") {
				t.Errorf("error %q does not name the field %s", err, tc.field)
			}
		})
	}
}

// TestBadFilesCovered keeps testdata/bad and the table in step.
func TestBadFilesCovered(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]bool{}
	for _, tc := range badCatalogs {
		inTable[tc.file] = true
	}
	for _, f := range files {
		if !inTable[filepath.Base(f)] {
			t.Errorf("%s has no row in badCatalogs", f)
		}
	}
	if len(badCatalogs) < 15 {
		t.Errorf("%d malformed catalogs, want at least 15", len(badCatalogs))
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	const data = `services:
  - name: checkout
    port: 8080
    stable: v1
    versions:
      - name: v1
        endpoints: ["10.0.0.1:9000", "10.0.0.2:99999"]
      - name: v1
        endpoints: []
        extra: 1
    healthCheck:
      protocol: udp
  - name: Check|out
    port: 8080
    stable: v3
    versions:
      - name: v1
        endpoints: ["[::1]:80", "::1:80"]
notifications:
  - name: s
    url: ftp://x
    events: [started, finished]
`
	_, err := Parse("catalog.yaml", []byte(data))
	if err == nil {
		t.Fatal("Parse succeeded, want errors")
	}
	want := []string{
		`catalog.yaml:7:38: services[0].versions[0].endpoints[1]: "10.0.0.2:99999": port out of range 1-65535`,
		`catalog.yaml:8:15: services[0].versions[1].name: "v1": duplicate version name, first declared at versions[0]`,
		`catalog.yaml:9:20: services[0].versions[1].endpoints: at least one endpoint (host:port) is required`,
		`catalog.yaml:10:9: services[0].versions[1].extra: unknown field "extra" (known: name, endpoints, zone, metrics)`,
		`catalog.yaml:12:17: services[0].healthCheck.protocol: "udp": unknown protocol, want tcp, http or grpc`,
		`catalog.yaml:13:11: services[1].name: "Check|out" is not a valid name: '|' is reserved (it separates service and version in cluster names)`,
		`catalog.yaml:14:11: services[1].port: port 8080 is also the port of services[0] (checkout): each service needs its own sidecar listener port`,
		`catalog.yaml:15:13: services[1].stable: "v3" is not one of the versions (v1)`,
		`catalog.yaml:18:33: services[1].versions[0].endpoints[1]: "::1:80": want host:port (IPv6 in brackets): too many colons in address`,
		`catalog.yaml:21:10: notifications[0].url: "ftp://x": want an http or https URL`,
		`catalog.yaml:22:23: notifications[0].events[1]: "finished": unknown event, want one of started, stage_advanced, paused, resumed, rolled_back, completed, monitoring_closed, publish_failed, published, frozen, unfrozen`,
	}
	got := strings.Split(err.Error(), "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "good", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Catalog{Services: []Service{{
		Name:    "echo",
		Domains: []string{"echo"},
		Port:    10000,
		Stable:  "v1",
		Versions: []Version{{
			Name:      "v1",
			Endpoints: []Endpoint{{Host: "127.0.0.1", Port: 9001}},
		}},
		HealthCheck: HealthCheck{
			Protocol: "tcp", Path: "/healthz",
			Interval: Duration(5 * time.Second), Timeout: Duration(time.Second),
			HealthyThreshold: 1, UnhealthyThreshold: 2,
		},
		Outlier: Outlier{
			Consecutive5xx: 5, Interval: Duration(10 * time.Second),
			BaseEjectionTime: Duration(30 * time.Second), MaxEjectionPercent: 10,
		},
		Metrics: MetricQueries{Convention: ConventionEnvoy, ScrapePath: "/stats/prometheus", Alerts: `service="{{.Service}}"`},
	}}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("minimal catalog (-want +got):\n%s", diff)
	}
}

func TestParseFull(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "good", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	svc, ok := c.Service("checkout")
	if !ok {
		t.Fatal(`Service("checkout") not found`)
	}
	if got, want := svc.Domains, []string{"checkout", "checkout.shop.svc.cluster.local", "*.checkout.example.com"}; !cmp.Equal(got, want) {
		t.Errorf("domains %v, want %v", got, want)
	}
	v2, ok := svc.Version("v2")
	if !ok {
		t.Fatal(`Version("v2") not found`)
	}
	wantV2 := Version{
		Name: "v2", Zone: "eu-west-1b",
		Endpoints: []Endpoint{{Host: "fd00::12", Port: 8080}, {Host: "checkout-v2.shop.svc.cluster.local", Port: 8080}},
		Metrics:   []Endpoint{{Host: "fd00::12", Port: 9090}},
	}
	if diff := cmp.Diff(wantV2, v2); diff != "" {
		t.Errorf("checkout v2 (-want +got):\n%s", diff)
	}
	wantHC := HealthCheck{Protocol: "http", Path: "/ready", Interval: Duration(10 * time.Second),
		Timeout: Duration(2 * time.Second), HealthyThreshold: 2, UnhealthyThreshold: 3,
		ExpectedStatuses: []StatusRange{"200-299", "304"}}
	if diff := cmp.Diff(wantHC, svc.HealthCheck); diff != "" {
		t.Errorf("health check (-want +got):\n%s", diff)
	}
	half, thousand := 0.5, 1000.0
	wantChecks := []MetricCheck{
		{Name: "orders-flowing", Query: `sum(rate(orders_total{version="{{.Version}}"}[{{.Window}}]))`, Min: &half, OnFail: "rollback"},
		{Name: "queue-depth", Query: `max(checkout_queue_depth{version="{{.Version}}"})`, Max: &thousand},
	}
	if diff := cmp.Diff(wantChecks, svc.Metrics.Checks); diff != "" {
		t.Errorf("metric checks (-want +got):\n%s", diff)
	}
	wantOutlier := Outlier{Consecutive5xx: 7, Interval: Duration(15 * time.Second),
		BaseEjectionTime: Duration(time.Minute), MaxEjectionPercent: 20}
	if diff := cmp.Diff(wantOutlier, svc.Outlier); diff != "" {
		t.Errorf("outlier detection (-want +got):\n%s", diff)
	}
	m := svc.Metrics
	if m.Convention != ConventionApp || m.ScrapePath != "/internal/metrics" || m.Requests == "" || m.ErrorRate == "" || m.LatencyP99 == "" || m.LatencyBuckets == "" ||
		m.Alerts != `team="payments",app=~"{{.Service}}.*"` || !cmp.Equal(m.Targets, []Endpoint{{Host: "10.0.1.5", Port: 9901}}) {
		t.Errorf("metrics %+v: want every field set", svc.Metrics)
	}
	if !svc.ProxiesOptional {
		t.Error("proxiesOptional: true not read")
	}
	pay, _ := c.Service("payments")
	if pay.ProxiesOptional {
		t.Error("payments: proxiesOptional set without being written")
	}
	if pay.HealthCheck.Protocol != "tcp" || pay.Outlier.MaxEjectionPercent != 10 || len(pay.Domains) != 1 {
		t.Errorf("payments did not get the defaults: %+v", pay)
	}
	if pm := pay.Metrics; pm.Convention != ConventionEnvoy || pm.ScrapePath != DefaultEnvoyScrapePath || pm.Alerts != DefaultAlerts {
		t.Errorf("payments metrics %+v, want the envoy defaults", pm)
	}
	wantSinks := []Sink{
		{Name: "release-channel", URL: "https://hooks.slack.example.com/services/T000/B000/XXXX", Format: "slack",
			Events: []string{EventStarted, EventPaused, EventRolledBack, EventCompleted}},
		{Name: "audit", URL: "http://audit.internal:8080/octoroll/events", Format: "json"},
	}
	if diff := cmp.Diff(wantSinks, c.Notifications); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
	if _, ok := c.Service("absent"); ok {
		t.Error(`Service("absent") found`)
	}
	if _, ok := svc.Version("absent"); ok {
		t.Error(`Version("absent") found`)
	}
	var nilCatalog *Catalog
	if _, ok := nilCatalog.Service("checkout"); ok {
		t.Error("nil catalog has a service")
	}
}

func TestParseYAMLFeatures(t *testing.T) {
	// Anchors and aliases share settings; empty values leave fields unset.
	const data = `services:
  - name: a
    port: 10001
    stable: v1
    versions:
      - name: v1
        endpoints: ["10.0.0.1:80"]
    healthCheck: &hc
      protocol: grpc
      interval: 3s
    outlierDetection:
  - name: b
    port: 10002
    stable: v1
    versions:
      - name: v1
        endpoints: ["10.0.0.2:80"]
    healthCheck: *hc
`
	c, err := Parse("catalog.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Services {
		if s.HealthCheck.Protocol != "grpc" || s.HealthCheck.Interval.D() != 3*time.Second {
			t.Errorf("service %s health check %+v, want the shared grpc/3s", s.Name, s.HealthCheck)
		}
		if s.Outlier.Consecutive5xx != DefaultConsecutive5xx {
			t.Errorf("service %s outlier %+v, want defaults", s.Name, s.Outlier)
		}
	}
}

func TestParseMergeKeyRejected(t *testing.T) {
	const data = `base: &b {port: 1}
services:
  - <<: *b
    name: a
`
	_, err := Parse("c.yaml", []byte(data))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:1:1: base: unknown field") ||
		!strings.Contains(err.Error(), "c.yaml:3:5: services[0]: unsupported key") {
		t.Errorf("got %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "good", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("yaml", func(t *testing.T) {
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse("out.yaml", out)
		if err != nil {
			t.Fatalf("parse marshalled catalog: %v\n%s", err, out)
		}
		if diff := cmp.Diff(c, back); diff != "" {
			t.Errorf("YAML round trip (-want +got):\n%s", diff)
		}
	})
	t.Run("json", func(t *testing.T) {
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"healthCheck":{"protocol":"http"`, `"interval":"10s"`, `"endpoints":["10.0.1.10:8080"`, `"[fd00::12]:8080"`} {
			if !strings.Contains(string(out), want) {
				t.Errorf("JSON lacks %s:\n%s", want, out)
			}
		}
		var back Catalog
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c, &back); diff != "" {
			t.Errorf("JSON round trip (-want +got):\n%s", diff)
		}
	})
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in      string
		want    Endpoint
		wantErr string
	}{
		{in: "10.0.0.1:8080", want: Endpoint{Host: "10.0.0.1", Port: 8080}},
		{in: "[::1]:80", want: Endpoint{Host: "::1", Port: 80}},
		{in: "[fe80::1%eth0]:80", want: Endpoint{Host: "fe80::1%eth0", Port: 80}},
		{in: "backend.svc.cluster.local:65535", want: Endpoint{Host: "backend.svc.cluster.local", Port: 65535}},
		{in: "localhost:1", want: Endpoint{Host: "localhost", Port: 1}},
		{in: "10.0.0.1:0", wantErr: "port out of range 1-65535"},
		{in: "10.0.0.1:65536", wantErr: "port out of range 1-65535"},
		{in: "10.0.0.1:http", wantErr: "not a number"},
		{in: "10.0.0.1:", wantErr: "not a number"},
		{in: ":80", wantErr: "empty host"},
		{in: "::1:80", wantErr: "IPv6 in brackets"},
		{in: "[10.0.0.1:80", wantErr: "want host:port"},
		{in: "bad_host:80", wantErr: "want an IP address or a DNS name"},
		{in: "-bad.example:80", wantErr: "want an IP address or a DNS name"},
		{in: "1.2.3:80", wantErr: "invalid IP address"},
		{in: "[zz::1]:80", wantErr: "invalid IPv6 address"},
	}
	for _, tc := range tests {
		got, err := ParseEndpoint(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseEndpoint(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseEndpoint(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		if back, err := ParseEndpoint(got.String()); err != nil || back != got {
			t.Errorf("String() %q does not parse back: %v, %v", got.String(), back, err)
		}
	}
	if got := (Endpoint{Host: "::1", Port: 80}).String(); got != "[::1]:80" {
		t.Errorf("IPv6 String() = %q, want [::1]:80", got)
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"1m30s"`), &d); err != nil || d.D() != 90*time.Second {
		t.Errorf("unmarshal 1m30s: %v, %v", d, err)
	}
	if err := json.Unmarshal([]byte(`90`), &d); err == nil {
		t.Error("a bare JSON number was accepted as a duration")
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error(`"soon" was accepted as a duration`)
	}
	var e Endpoint
	if err := json.Unmarshal([]byte(`"10.0.0.1:99999"`), &e); err == nil {
		t.Error("endpoint with port 99999 accepted from JSON")
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	good := &Catalog{Services: []Service{{
		Name: "a", Port: 10000, Stable: "v1",
		Versions: []Version{{Name: "v1", Endpoints: []Endpoint{{Host: "10.0.0.1", Port: 80}}}},
	}}}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	bad := &Catalog{Services: []Service{{
		Name: "a", Port: 10000, Stable: "v1",
		Versions:    []Version{{Name: "v1", Endpoints: []Endpoint{{Host: "10.0.0.1", Port: 0}}}},
		HealthCheck: HealthCheck{Interval: Duration(-time.Second)},
	}}}
	err := bad.Validate()
	want := []string{
		`services[0].versions[0].endpoints[0]: "10.0.0.1:0": port out of range 1-65535`,
		`services[0].healthCheck.interval: -1s: must be positive`,
	}
	if err == nil {
		t.Fatal("Validate(bad) = nil")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Validate(bad) (-want +got):\n%s", diff)
	}
	var nilCatalog *Catalog
	if nilCatalog.Validate() == nil {
		t.Error("Validate(nil) = nil")
	}
	// Defaults make a valid catalog no less valid, and applying them twice changes nothing.
	good.ApplyDefaults()
	once := *good
	good.ApplyDefaults()
	if err := good.Validate(); err != nil || !cmp.Equal(once, *good) {
		t.Errorf("after ApplyDefaults: %v, diff %s", err, cmp.Diff(once, *good))
	}
}

func TestMetricQueriesDefaults(t *testing.T) {
	tests := []struct {
		in                       MetricQueries
		convention, path, alerts string
	}{
		{MetricQueries{}, ConventionEnvoy, "/stats/prometheus", `service="{{.Service}}"`},
		{MetricQueries{Convention: ConventionApp}, ConventionApp, "/metrics", `service="{{.Service}}"`},
		{MetricQueries{Convention: ConventionEnvoy, ScrapePath: "/x", Alerts: `team="a"`}, ConventionEnvoy, "/x", `team="a"`},
		{MetricQueries{Convention: ConventionApp, ScrapePath: "/y"}, ConventionApp, "/y", `service="{{.Service}}"`},
	}
	for _, tc := range tests {
		if got := tc.in.EffectiveConvention(); got != tc.convention {
			t.Errorf("%+v: convention %q, want %q", tc.in, got, tc.convention)
		}
		if got := tc.in.EffectiveScrapePath(); got != tc.path {
			t.Errorf("%+v: scrape path %q, want %q", tc.in, got, tc.path)
		}
		if got := tc.in.EffectiveAlerts(); got != tc.alerts {
			t.Errorf("%+v: alerts %q, want %q", tc.in, got, tc.alerts)
		}
	}
}

func TestValidateMetricTemplates(t *testing.T) {
	svc := func(m MetricQueries) *Catalog {
		return &Catalog{Services: []Service{{
			Name: "a", Port: 10000, Stable: "v1", Metrics: m,
			Versions: []Version{{Name: "v1", Endpoints: []Endpoint{{Host: "10.0.0.1", Port: 80}}}},
		}}}
	}
	good := MetricQueries{
		Convention:     ConventionEnvoy,
		Requests:       `sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="{{.Cluster}}"}[{{.Window}}]))`,
		ErrorRate:      `x{service="{{.Service}}",version="{{.Version}}"}`,
		LatencyP99:     `histogram_quantile(0.99, sum by (le) (rate(y_bucket[{{.Window}}])))`,
		LatencyBuckets: `sum by (le) (increase(y_bucket{version="{{.Version}}"}[{{.Window}}]))`,
		Alerts:         `team="payments",app=~"{{.Service}}.*"`,
		Targets:        []Endpoint{{Host: "127.0.0.1", Port: 9901}, {Host: "envoy.local", Port: 9901}},
	}
	if err := svc(good).Validate(); err != nil {
		t.Errorf("Validate(good metrics) = %v", err)
	}
	bad := MetricQueries{
		Convention:     "linkerd",
		Requests:       `{{.Window`,
		ErrorRate:      `{{.Nope}}`,
		LatencyP99:     `{{template "x"}}`,
		LatencyBuckets: `{{.Le}}`,
		Alerts:         `version="{{.Version}}"`,
		Targets:        []Endpoint{{Host: "127.0.0.1", Port: 0}},
	}
	err := svc(bad).Validate()
	if err == nil {
		t.Fatal("Validate(bad metrics) = nil")
	}
	for _, want := range []string{
		`services[0].metrics.convention: "linkerd": unknown convention`,
		`services[0].metrics.requests: query template: query:1: unclosed action`,
		`services[0].metrics.errorRate: query template (fields are .Service, .Version, .Cluster, .Window)`,
		`services[0].metrics.latencyP99: query template`,
		`services[0].metrics.latencyBuckets: query template (fields are .Service, .Version, .Cluster, .Window)`,
		`services[0].metrics.alerts: query template (fields are .Service)`,
		`services[0].metrics.targets[0]: "127.0.0.1:0": port out of range`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}

// Alert selectors must be PromQL label matchers: an empty one would match every
// service's alerts, a malformed one would fail every alert query.
func TestValidateAlertSelectors(t *testing.T) {
	for sel, ok := range map[string]bool{
		`service="{{.Service}}"`:                  true,
		`team="payments", app=~"{{.Service}}.*",`: true,
		`a!="x,y", b!~"\"q\""`:                    true,
		` `:                                       false,
		`checkout`:                                false,
		`service="{{.Service}}"}`:                 false,
		`service="a" team="b"`:                    false,
		`service=checkout`:                        false,
		`service="{{.Service}}",,team="x"`:        false,
		`{{if eq .Service "x"}}{{end}}`:           false,
	} {
		c := &Catalog{Services: []Service{{Name: "a", Port: 10000, Stable: "v1", Metrics: MetricQueries{Alerts: sel},
			Versions: []Version{{Name: "v1", Endpoints: []Endpoint{{Host: "10.0.0.1", Port: 80}}}}}}}
		err := c.Validate()
		if ok != (err == nil) {
			t.Errorf("alerts %q: Validate() = %v, want ok=%v", sel, err, ok)
		}
	}
}

func TestEventNames(t *testing.T) {
	names := EventNames()
	if len(names) != 11 {
		t.Fatalf("EventNames() = %v", names)
	}
	for _, n := range names {
		if !IsEventName(n) {
			t.Errorf("IsEventName(%q) = false", n)
		}
	}
	names[0] = "mutated"
	if EventNames()[0] != EventStarted {
		t.Error("EventNames shares its backing array")
	}
	if IsEventName("rollback") {
		t.Error(`IsEventName("rollback") = true`)
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("services: [{name: x, versions: [{endpoints: [\"[::1]:1\"]}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned catalog %v and error %v", c, err)
		}
		if c != nil {
			// Whatever parses must validate and survive a round trip.
			if err := c.Validate(); err != nil {
				t.Fatalf("parsed catalog fails Validate: %v", err)
			}
			out, err := yaml.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse("fuzz.yaml", out)
			if err != nil {
				t.Fatalf("round trip: %v\n%s", err, out)
			}
			if !cmp.Equal(c, back) {
				t.Fatalf("round trip changed the catalog: %s", cmp.Diff(c, back))
			}
		}
	})
}

func TestStatusRange(t *testing.T) {
	tests := []struct {
		in      StatusRange
		lo, hi  int
		wantErr string
	}{
		{"200", 200, 200, ""},
		{"200-299", 200, 299, ""},
		{" 204 - 206 ", 204, 206, ""},
		{"100-599", 100, 599, ""},
		{"", 0, 0, "empty status"},
		{"099", 0, 0, "want a status code"},
		{"600", 0, 0, "want a status code"},
		{"2xx", 0, 0, "want a status code"},
		{"200-", 0, 0, "want a status code"},
		{"20", 0, 0, "want a status code"},
		{"299-200", 0, 0, "ends before it starts"},
	}
	for _, tt := range tests {
		t.Run(string(tt.in), func(t *testing.T) {
			lo, hi, err := tt.in.Bounds()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Bounds() error %v, want %q", err, tt.wantErr)
				}
				if tt.in.Contains(200) {
					t.Errorf("malformed %q contains 200", tt.in)
				}
				return
			}
			if err != nil || lo != tt.lo || hi != tt.hi {
				t.Fatalf("Bounds() = %d, %d, %v; want %d, %d", lo, hi, err, tt.lo, tt.hi)
			}
			if !tt.in.Contains(lo) || !tt.in.Contains(hi) || tt.in.Contains(hi+1) || tt.in.Contains(lo-1) {
				t.Errorf("Contains disagrees with Bounds %d-%d", lo, hi)
			}
		})
	}
	var got []StatusRange
	if err := json.Unmarshal([]byte(`[200, "200-299"]`), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]StatusRange{"200", "200-299"}, got); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}

func TestValidateHealthCheckInCode(t *testing.T) {
	c := &Catalog{Services: []Service{{
		Name: "checkout", Port: 10080, Stable: "v1",
		Versions:    []Version{{Name: "v1", Endpoints: []Endpoint{{Host: "10.0.0.1", Port: 8080}}}},
		HealthCheck: HealthCheck{Protocol: ProtocolHTTP, ExpectedStatuses: []StatusRange{"200", "abc", "200"}, GRPCService: "x"},
	}}}
	err := c.Validate()
	for _, want := range []string{
		`services[0].healthCheck.expectedStatuses[1]: "abc": want a status code`,
		`services[0].healthCheck.expectedStatuses[2]: "200": duplicate, also expectedStatuses[0]`,
		"services[0].healthCheck.grpcService: only used when protocol is grpc (protocol is http)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to contain %q", err, want)
		}
	}
	c.Services[0].HealthCheck = HealthCheck{Protocol: ProtocolGRPC, GRPCService: "shop.Checkout"}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("grpc service after ApplyDefaults: %v", err)
	}
}
