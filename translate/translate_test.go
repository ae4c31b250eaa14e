package translate

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"gopkg.in/yaml.v3"

	"github.com/octoacme/octoroll/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The test input format: a list of Desired, with endpoints written "host:port" and
// durations as Go duration strings. It is decoded here rather than through the catalog
// loader so that these tests depend only on the model types.
type inService struct {
	Name     string   `yaml:"name"`
	Domains  []string `yaml:"domains"`
	Port     uint32   `yaml:"port"`
	Stable   string   `yaml:"stable"`
	Versions []struct {
		Name      string   `yaml:"name"`
		Zone      string   `yaml:"zone"`
		Endpoints []string `yaml:"endpoints"`
	} `yaml:"versions"`
	HealthCheck struct {
		Protocol           string              `yaml:"protocol"`
		Path               string              `yaml:"path"`
		Interval           string              `yaml:"interval"`
		Timeout            string              `yaml:"timeout"`
		HealthyThreshold   uint32              `yaml:"healthyThreshold"`
		UnhealthyThreshold uint32              `yaml:"unhealthyThreshold"`
		ExpectedStatuses   []model.StatusRange `yaml:"expectedStatuses"`
		GRPCService        string              `yaml:"grpcService"`
	} `yaml:"healthCheck"`
	Outlier struct {
		Consecutive5xx     uint32 `yaml:"consecutive5xx"`
		Interval           string `yaml:"interval"`
		BaseEjectionTime   string `yaml:"baseEjectionTime"`
		MaxEjectionPercent uint32 `yaml:"maxEjectionPercent"`
	} `yaml:"outlierDetection"`
}

type inDesired struct {
	Service   inService           `yaml:"service"`
	Weights   map[string]uint32   `yaml:"weights"`
	Matches   []Match             `yaml:"matches"`
	Unhealthy map[string][]string `yaml:"unhealthy"`
}

func readDesired(t *testing.T, path string) []Desired {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var in []inDesired
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	dur := func(s string) model.Duration {
		if s == "" {
			return 0
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: duration %q: %v", path, s, err)
		}
		return model.Duration(d)
	}
	var out []Desired
	for _, d := range in {
		s := d.Service
		svc := model.Service{
			Name: s.Name, Domains: s.Domains, Port: s.Port, Stable: s.Stable,
			HealthCheck: model.HealthCheck{
				Protocol: s.HealthCheck.Protocol, Path: s.HealthCheck.Path,
				Interval: dur(s.HealthCheck.Interval), Timeout: dur(s.HealthCheck.Timeout),
				HealthyThreshold: s.HealthCheck.HealthyThreshold, UnhealthyThreshold: s.HealthCheck.UnhealthyThreshold,
				ExpectedStatuses: s.HealthCheck.ExpectedStatuses, GRPCService: s.HealthCheck.GRPCService,
			},
			Outlier: model.Outlier{
				Consecutive5xx: s.Outlier.Consecutive5xx, Interval: dur(s.Outlier.Interval),
				BaseEjectionTime: dur(s.Outlier.BaseEjectionTime), MaxEjectionPercent: s.Outlier.MaxEjectionPercent,
			},
		}
		for _, v := range s.Versions {
			cv := model.Version{Name: v.Name, Zone: v.Zone}
			for _, ep := range v.Endpoints {
				host, port, err := net.SplitHostPort(ep)
				if err != nil {
					t.Fatalf("%s: endpoint %q: %v", path, ep, err)
				}
				p, err := strconv.ParseUint(port, 10, 16)
				if err != nil {
					t.Fatalf("%s: endpoint %q: %v", path, ep, err)
				}
				cv.Endpoints = append(cv.Endpoints, model.Endpoint{Host: host, Port: uint32(p)})
			}
			svc.Versions = append(svc.Versions, cv)
		}
		out = append(out, Desired{Service: svc, Weights: d.Weights, Matches: d.Matches, Unhealthy: d.Unhealthy})
	}
	return out
}

// toYAML renders msgs as a YAML list of their protojson forms (keys sorted).
func toYAML[M proto.Message](t *testing.T, msgs []M) []byte {
	t.Helper()
	list := make([]any, 0, len(msgs))
	for _, m := range msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		list = append(list, v)
	}
	out, err := yaml.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fromYAML parses a golden file written by toYAML.
func fromYAML[M proto.Message](t *testing.T, b []byte, newM func() M) []M {
	t.Helper()
	var list []any
	if err := yaml.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	out := make([]M, 0, len(list))
	for _, v := range list {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		m := newM()
		if err := protojson.Unmarshal(j, m); err != nil {
			t.Fatalf("golden: %v", err)
		}
		out = append(out, m)
	}
	return out
}

func golden[M proto.Message](t *testing.T, path string, got []M, newM func() M) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, toYAML(t, got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./translate -run TestTranslateGolden -update to create it)", err)
	}
	want := fromYAML(t, b, newM)
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// mustBeServable asserts everything octoroll promises about translated resources.
func mustBeServable(t *testing.T, r Resources) {
	t.Helper()
	for _, l := range r.Listeners {
		if err := l.ValidateAll(); err != nil {
			t.Errorf("listener %q: Validate: %v", l.GetName(), err)
		}
	}
	for _, rc := range r.Routes {
		if err := rc.ValidateAll(); err != nil {
			t.Errorf("route %q: Validate: %v", rc.GetName(), err)
		}
	}
	for _, c := range r.Clusters {
		if err := c.ValidateAll(); err != nil {
			t.Errorf("cluster %q: Validate: %v", c.GetName(), err)
		}
	}
	for _, e := range r.Endpoints {
		if err := e.ValidateAll(); err != nil {
			t.Errorf("endpoints %q: Validate: %v", e.GetClusterName(), err)
		}
	}
	if err := Check(r); err != nil {
		t.Errorf("Check: %v", err)
	}
	snap, err := cachev3.NewSnapshot("1", r.ByType())
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	if err := snap.Consistent(); err != nil {
		t.Errorf("Consistent: %v", err)
	}
}

func TestTranslateGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no inputs in testdata")
	}
	for _, in := range inputs {
		base := strings.TrimSuffix(in, ".in.yaml")
		t.Run(filepath.Base(base), func(t *testing.T) {
			desired := readDesired(t, in)
			got, err := Translate(desired)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			mustBeServable(t, got)
			golden(t, base+".listeners.yaml", got.Listeners, func() *listenerv3.Listener { return &listenerv3.Listener{} })
			golden(t, base+".routes.yaml", got.Routes, func() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} })
			golden(t, base+".clusters.yaml", got.Clusters, func() *clusterv3.Cluster { return &clusterv3.Cluster{} })
			golden(t, base+".endpoints.yaml", got.Endpoints, func() *endpointv3.ClusterLoadAssignment { return &endpointv3.ClusterLoadAssignment{} })

			// Each service alone translates to its share of the whole.
			for _, d := range desired {
				one, err := TranslateService(d)
				if err != nil {
					t.Fatalf("TranslateService(%s): %v", d.Service.Name, err)
				}
				mustBeServable(t, one)
				if got.RouteVersion(d.Service.Name) != one.RouteVersion(d.Service.Name) {
					t.Errorf("RouteVersion(%s) differs between Translate and TranslateService", d.Service.Name)
				}
			}
		})
	}
}

func baseDesired() Desired {
	return Desired{
		Service: model.Service{
			Name:   "checkout",
			Port:   9001,
			Stable: "stable",
			Versions: []model.Version{
				{Name: "stable", Endpoints: []model.Endpoint{{Host: "10.0.0.1", Port: 8080}, {Host: "10.0.0.2", Port: 8080}}},
				{Name: "canary", Zone: "z1", Endpoints: []model.Endpoint{{Host: "10.0.1.1", Port: 8080}}},
			},
		},
		Weights: map[string]uint32{"stable": 9900, "canary": 100},
		Matches: []Match{{Header: "x-canary", Value: "always", Version: "canary"}},
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ClusterName("checkout", "stable"), "checkout|stable"},
		{RouteName("checkout"), "checkout"},
		{APIListenerName("checkout"), "checkout"},
		{SidecarListenerName("checkout"), "checkout|sidecar"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// gRPC clients subscribe only to referenced clusters; every version's cluster must be
// referenced by a route even at weight 0, and the weighted split must come last and list
// every version.
func TestEveryVersionStaysReferenced(t *testing.T) {
	d := baseDesired()
	d.Weights = map[string]uint32{"stable": 10000}
	r, err := TranslateService(d)
	if err != nil {
		t.Fatal(err)
	}
	vh := r.Routes[0].GetVirtualHosts()[0]
	if !slicesContains(vh.GetDomains(), "checkout") {
		t.Errorf("domains %v lack the gRPC target name", vh.GetDomains())
	}
	routes := vh.GetRoutes()
	var names []string
	for _, rt := range routes {
		names = append(names, rt.GetName())
	}
	if want := []string{"match-0", "pin-canary", "pin-stable", "split"}; !cmp.Equal(names, want) {
		t.Fatalf("route order %v, want %v", names, want)
	}
	pinned := map[string]bool{}
	for _, rt := range routes[1:3] {
		pinned[rt.GetRoute().GetCluster()] = true
		if h := rt.GetMatch().GetHeaders()[0]; h.GetName() != PinHeader {
			t.Errorf("pin route %q matches %q, want %q", rt.GetName(), h.GetName(), PinHeader)
		}
	}
	split := map[string]uint32{}
	for _, cw := range routes[3].GetRoute().GetWeightedClusters().GetClusters() {
		split[cw.GetName()] = cw.GetWeight().GetValue()
	}
	want := map[string]uint32{"checkout|stable": 10000, "checkout|canary": 0}
	if diff := cmp.Diff(want, split); diff != "" {
		t.Errorf("split (-want +got):\n%s", diff)
	}
	for _, c := range r.Clusters {
		if !pinned[c.GetName()] {
			t.Errorf("cluster %q has no pin route", c.GetName())
		}
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestCookieRegex(t *testing.T) {
	re := regexp.MustCompile(`^(?:` + CookieRegex("octoroll-flag", "on") + `)$`)
	for _, c := range []struct {
		header string
		want   bool
	}{
		{"octoroll-flag=on", true},
		{"a=b; octoroll-flag=on", true},
		{"a=b;octoroll-flag=on; c=d", true},
		{"a=b, octoroll-flag=on", true},
		{"octoroll-flag=off", false},
		{"octoroll-flag=onx", false},
		{"xoctoroll-flag=on", false},
		{"a=octoroll-flag=on", false},
		{"", false},
	} {
		if got := re.MatchString(c.header); got != c.want {
			t.Errorf("cookie %q: match %v, want %v", c.header, got, c.want)
		}
	}
	meta := regexp.MustCompile(`^(?:` + CookieRegex("a.b", "1+1") + `)$`)
	if meta.MatchString("aXb=1+1") || meta.MatchString("a.b=11") || !meta.MatchString("a.b=1+1") {
		t.Error("cookie name and value are not quoted")
	}
}

func TestVersionsWeightOnlyChange(t *testing.T) {
	other := baseDesired()
	other.Service.Name = "payments"
	other.Service.Port = 9002
	before, err := Translate([]Desired{baseDesired(), other})
	if err != nil {
		t.Fatal(err)
	}
	moved := baseDesired()
	moved.Weights = map[string]uint32{"stable": 9000, "canary": 1000}
	after, err := Translate([]Desired{other, moved}) // order must not matter either
	if err != nil {
		t.Fatal(err)
	}
	l1, r1, c1, e1 := before.Versions()
	l2, r2, c2, e2 := after.Versions()
	if l1 != l2 || c1 != c2 || e1 != e2 {
		t.Errorf("weight change changed listener/cluster/endpoint versions: %s/%s %s/%s %s/%s", l1, l2, c1, c2, e1, e2)
	}
	if r1 == r2 {
		t.Error("weight change did not change the route version")
	}
	if before.RouteVersion("checkout") == after.RouteVersion("checkout") {
		t.Error("weight change did not change RouteVersion(checkout)")
	}
	if before.RouteVersion("payments") != after.RouteVersion("payments") {
		t.Error("weight change of checkout changed RouteVersion(payments)")
	}
	if v := before.RouteVersion("nope"); v != "" {
		t.Errorf("RouteVersion of an unknown service = %q, want empty", v)
	}

	// Same input, same versions, however often it is translated.
	for range 20 {
		again, err := Translate([]Desired{baseDesired(), other})
		if err != nil {
			t.Fatal(err)
		}
		l, r, c, e := again.Versions()
		if l != l1 || r != r1 || c != c1 || e != e1 {
			t.Fatal("the same desired state gave different versions")
		}
	}

	// An endpoint change changes only the endpoint version.
	ep := baseDesired()
	ep.Service.Versions[1].Endpoints = append(ep.Service.Versions[1].Endpoints, model.Endpoint{Host: "10.0.1.2", Port: 8080})
	changed, err := Translate([]Desired{ep, other})
	if err != nil {
		t.Fatal(err)
	}
	l3, r3, c3, e3 := changed.Versions()
	if l3 != l1 || r3 != r1 || c3 != c1 || e3 == e1 {
		t.Errorf("endpoint change: versions %s %s %s %s vs %s %s %s %s", l3, r3, c3, e3, l1, r1, c1, e1)
	}

	// A health change (an endpoint marked unhealthy, then healthy again) changes only
	// the endpoint version, and back.
	down := baseDesired()
	down.Unhealthy = map[string][]string{"stable": {"10.0.0.2:8080"}}
	marked, err := Translate([]Desired{down, other})
	if err != nil {
		t.Fatal(err)
	}
	l4, r4, c4, e4 := marked.Versions()
	if l4 != l1 || r4 != r1 || c4 != c1 || e4 == e1 {
		t.Errorf("health change: versions %s %s %s %s vs %s %s %s %s", l4, r4, c4, e4, l1, r1, c1, e1)
	}
	if marked.RouteVersion("checkout") != before.RouteVersion("checkout") {
		t.Error("health change changed RouteVersion(checkout)")
	}
	up := baseDesired()
	up.Unhealthy = map[string][]string{"stable": nil}
	healed, err := Translate([]Desired{up, other})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, e5 := healed.Versions(); e5 != e1 {
		t.Error("healthy again: endpoint version differs from the never-marked one")
	}
}

func TestTranslateUnhealthy(t *testing.T) {
	status := func(r Resources) map[string]corev3.HealthStatus {
		out := map[string]corev3.HealthStatus{}
		for _, cla := range r.Endpoints {
			for _, loc := range cla.GetEndpoints() {
				for _, lbe := range loc.GetLbEndpoints() {
					sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
					out[fmt.Sprintf("%s %s:%d", cla.GetClusterName(), sa.GetAddress(), sa.GetPortValue())] = lbe.GetHealthStatus()
				}
			}
		}
		return out
	}
	d := baseDesired()
	// Every canary endpoint and one stable endpoint down, plus an address that is not
	// one of the version's endpoints.
	d.Unhealthy = map[string][]string{"stable": {"10.0.0.1:8080", "10.9.9.9:1"}, "canary": {"10.0.1.1:8080"}}
	got, err := TranslateService(d)
	if err != nil {
		t.Fatal(err)
	}
	mustBeServable(t, got)
	want := map[string]corev3.HealthStatus{
		"checkout|stable 10.0.0.1:8080": corev3.HealthStatus_UNHEALTHY,
		"checkout|stable 10.0.0.2:8080": corev3.HealthStatus_UNKNOWN,
		"checkout|canary 10.0.1.1:8080": corev3.HealthStatus_UNHEALTHY,
	}
	if diff := cmp.Diff(want, status(got)); diff != "" {
		t.Errorf("health status (-want +got):\n%s", diff)
	}
}

func TestTranslateRejects(t *testing.T) {
	dupPort := baseDesired()
	dupPort.Service.Name = "payments"
	bad := baseDesired()
	bad.Weights = map[string]uint32{"stable": 1}
	for _, c := range []struct {
		name    string
		desired []Desired
		want    []string
	}{
		{"duplicate service", []Desired{baseDesired(), baseDesired()}, []string{`service "checkout" (desired[1]): duplicate service name`}},
		{"duplicate port", []Desired{baseDesired(), dupPort}, []string{`service "payments" (desired[1]): port 9001 already used by service "checkout"`}},
		{"invalid service", []Desired{bad}, []string{`service "checkout" (desired[0]): weights: sum to 1, want 10000`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Translate(c.desired)
			wantErrs(t, err, c.want...)
		})
	}
	if _, err := TranslateService(bad); err == nil || !strings.Contains(err.Error(), `service "checkout": weights: sum to 1`) {
		t.Errorf("TranslateService: %v", err)
	}
}

func wantErrs(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	t.Logf("error: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\nlacks %q", err, w)
		}
	}
}

func TestDesiredValidate(t *testing.T) {
	if err := baseDesired().Validate(); err != nil {
		t.Fatalf("valid desired: %v", err)
	}
	for _, c := range []struct {
		name string
		mut  func(*Desired)
		want []string
	}{
		{"weights do not sum", func(d *Desired) { d.Weights["canary"] = 50 }, []string{"weights: sum to 9950, want 10000"}},
		{"all weights zero", func(d *Desired) { d.Weights = nil }, []string{"weights: sum to 0, want 10000"}},
		{"weight above total", func(d *Desired) { d.Weights = map[string]uint32{"stable": 20000} }, []string{`weights["stable"]: 20000 exceeds 10000`}},
		{"weight of unknown version", func(d *Desired) { d.Weights["ghost"] = 0 }, []string{`weights["ghost"]: not one of service.versions`}},
		{"no stable", func(d *Desired) { d.Service.Stable = "" }, []string{"service.stable: no stable version"}},
		{"unknown stable", func(d *Desired) { d.Service.Stable = "v0" }, []string{`service.stable: "v0" is not one of service.versions`}},
		{"no versions", func(d *Desired) { d.Service.Versions = nil; d.Weights = nil }, []string{"service.versions: no versions"}},
		{"duplicate version", func(d *Desired) { d.Service.Versions[1].Name = "stable" }, []string{`service.versions[1].name: duplicate version "stable"`}},
		{"separator in version", func(d *Desired) { d.Service.Versions[1].Name = "a|b" }, []string{`service.versions[1].name: "a|b" is not a valid name`}},
		{"separator in service", func(d *Desired) { d.Service.Name = "a|b" }, []string{`service.name: "a|b" is not a valid name`}},
		{"space in version", func(d *Desired) { d.Service.Versions[1].Name = "v2 x" }, []string{`service.versions[1].name: "v2 x" is not a valid name: want a DNS label`}},
		{"leading dash in version", func(d *Desired) { d.Service.Versions[1].Name = "-v9" }, []string{`service.versions[1].name: "-v9" is not a valid name: must start and end`}},
		{"slash in version", func(d *Desired) { d.Service.Versions[1].Name = "a/b" }, []string{`service.versions[1].name: "a/b" is not a valid name`}},
		{"non-ASCII version", func(d *Desired) { d.Service.Versions[1].Name = "v☃" }, []string{`service.versions[1].name: "v☃" is not a valid name`}},
		{"space in zone", func(d *Desired) { d.Service.Versions[0].Zone = "eu west" }, []string{`service.versions[0].zone: "eu west" is not a valid zone`}},
		{"separator in zone", func(d *Desired) { d.Service.Versions[0].Zone = "eu|west" }, []string{`service.versions[0].zone: "eu|west" is not a valid zone`}},
		{"port zero", func(d *Desired) { d.Service.Port = 0 }, []string{"service.port: 0 is out of range"}},
		{"bad domain", func(d *Desired) { d.Service.Domains = []string{"ok", ""} }, []string{"service.domains[1]"}},
		{"no endpoints", func(d *Desired) { d.Service.Versions[0].Endpoints = nil }, []string{"service.versions[0].endpoints: at least one endpoint"}},
		{"dns endpoint", func(d *Desired) { d.Service.Versions[0].Endpoints[0].Host = "stable.internal" }, []string{`service.versions[0].endpoints[0].host: "stable.internal" is not an IP address`}},
		{"endpoint port", func(d *Desired) { d.Service.Versions[0].Endpoints[1].Port = 70000 }, []string{`service.versions[0].endpoints[1]: "10.0.0.2:70000": port out of range 1-65535`}},
		{"duplicate endpoint", func(d *Desired) { d.Service.Versions[0].Endpoints[1] = d.Service.Versions[0].Endpoints[0] }, []string{`service.versions[0].endpoints[1]: "10.0.0.1:8080": duplicate endpoint, also endpoints[0]`}},
		{"header and cookie", func(d *Desired) { d.Matches[0].Cookie = "c" }, []string{"matches[0]: both header and cookie set"}},
		{"neither header nor cookie", func(d *Desired) { d.Matches[0].Header = "" }, []string{"matches[0]: neither header nor cookie set"}},
		{"match unknown version", func(d *Desired) { d.Matches[0].Version = "v9" }, []string{`matches[0].version: "v9" is not one of service.versions`}},
		{"match empty value", func(d *Desired) { d.Matches[0].Value = "" }, []string{"matches[0].value: required"}},
		{"match pin header", func(d *Desired) { d.Matches[0].Header = "X-Octoroll-Pin" }, []string{`matches[0].header: "X-Octoroll-Pin" is reserved`}},
		{"match bad header", func(d *Desired) { d.Matches[0].Header = "x canary" }, []string{`matches[0].header: "x canary" is not a valid header name`}},
		{"match bad cookie value", func(d *Desired) {
			d.Matches[0] = Match{Cookie: "flag", Value: "a;b", Version: "canary"}
		}, []string{`matches[0].value: "a;b" is not a valid cookie value`}},
		{"health protocol", func(d *Desired) { d.Service.HealthCheck.Protocol = "udp" }, []string{`service.healthCheck.protocol: "udp" is not one of http, grpc, tcp`}},
		{"health path", func(d *Desired) { d.Service.HealthCheck.Path = "healthz" }, []string{`service.healthCheck.path: "healthz" does not start with /`}},
		{"health interval", func(d *Desired) { d.Service.HealthCheck.Interval = -1 }, []string{"service.healthCheck.interval: negative"}},
		{"ejection percent", func(d *Desired) { d.Service.Outlier.MaxEjectionPercent = 101 }, []string{"service.outlierDetection.maxEjectionPercent: 101 exceeds 100"}},
		{"health status range", func(d *Desired) {
			d.Service.HealthCheck.ExpectedStatuses = []model.StatusRange{"200", "300-200"}
		}, []string{`service.healthCheck.expectedStatuses[1]: "300-200": the range ends before it starts`}},
		{"unhealthy of unknown version", func(d *Desired) { d.Unhealthy = map[string][]string{"ghost": nil} }, []string{`unhealthy["ghost"]: not one of service.versions`}},
		{"unhealthy bad address", func(d *Desired) { d.Unhealthy = map[string][]string{"canary": {"10.0.1.1"}} }, []string{`unhealthy["canary"][0]: "10.0.1.1": want host:port`}},
		{"every problem reported", func(d *Desired) {
			d.Service.Port = 0
			d.Weights = nil
			d.Matches[0].Version = "v9"
		}, []string{"service.port", "weights: sum to 0", "matches[0].version"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := baseDesired()
			c.mut(&d)
			wantErrs(t, d.Validate(), c.want...)
		})
	}
}

// editHCM rewrites the HTTP connection manager of l (api_listener or first filter).
func editHCM(t *testing.T, l *listenerv3.Listener, edit func(*hcmv3.HttpConnectionManager)) {
	t.Helper()
	var a *anypb.Any
	if l.GetApiListener() != nil {
		a = l.GetApiListener().GetApiListener()
	} else {
		a = l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := a.UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	edit(hcm)
	if err := a.MarshalFrom(hcm); err != nil {
		t.Fatal(err)
	}
}

func cloneResources(r Resources) Resources {
	var out Resources
	for _, l := range r.Listeners {
		out.Listeners = append(out.Listeners, proto.Clone(l).(*listenerv3.Listener))
	}
	for _, rc := range r.Routes {
		out.Routes = append(out.Routes, proto.Clone(rc).(*routev3.RouteConfiguration))
	}
	for _, c := range r.Clusters {
		out.Clusters = append(out.Clusters, proto.Clone(c).(*clusterv3.Cluster))
	}
	for _, e := range r.Endpoints {
		out.Endpoints = append(out.Endpoints, proto.Clone(e).(*endpointv3.ClusterLoadAssignment))
	}
	return out
}

func TestCheckCatches(t *testing.T) {
	good, err := TranslateService(baseDesired())
	if err != nil {
		t.Fatal(err)
	}
	// Resources sorted by name: listeners [checkout (api), checkout|sidecar],
	// clusters and endpoints [checkout|canary, checkout|stable].
	api := func(r Resources) *listenerv3.Listener { return r.Listeners[0] }
	sidecar := func(r Resources) *listenerv3.Listener { return r.Listeners[1] }
	routes := func(r Resources) []*routev3.Route { return r.Routes[0].GetVirtualHosts()[0].GetRoutes() }
	split := func(r Resources) *routev3.WeightedCluster {
		rs := routes(r)
		return rs[len(rs)-1].GetRoute().GetWeightedClusters()
	}
	if api(good).GetApiListener() == nil || sidecar(good).GetApiListener() != nil {
		t.Fatal("unexpected listener order")
	}
	for _, c := range []struct {
		name string
		mut  func(t *testing.T, r *Resources)
		want []string
	}{
		{"all weights zero", func(t *testing.T, r *Resources) {
			for _, cw := range split(*r).GetClusters() {
				cw.Weight = wrapperspb.UInt32(0)
			}
		}, []string{`routes[3] "split": weighted_clusters: every weight is 0`}},
		{"weights do not sum to total", func(t *testing.T, r *Resources) {
			split(*r).GetClusters()[0].Weight = wrapperspb.UInt32(1)
		}, []string{"weighted_clusters: weights sum to 9901, want 10000"}},
		{"empty weighted clusters", func(t *testing.T, r *Resources) {
			split(*r).Clusters = nil
		}, []string{"weighted_clusters is empty"}},
		{"stale total weight", func(t *testing.T, r *Resources) {
			split(*r).TotalWeight = wrapperspb.UInt32(100) //nolint:staticcheck // testing the deprecated field
		}, []string{"total_weight 100 differs from the sum 10000"}},
		{"no router in sidecar", func(t *testing.T, r *Resources) {
			editHCM(t, sidecar(*r), func(h *hcmv3.HttpConnectionManager) { h.HttpFilters = nil })
		}, []string{`listener "checkout|sidecar": filter_chains[0].filters[0] "envoy.filters.network.http_connection_manager": no http_filters`}},
		{"no router in api_listener", func(t *testing.T, r *Resources) {
			editHCM(t, api(*r), func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = []*hcmv3.HttpFilter{{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}}}
			})
		}, []string{`listener "checkout": api_listener: last http filter "envoy.filters.http.fault" is not the router`}},
		{"router not last", func(t *testing.T, r *Resources) {
			editHCM(t, api(*r), func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append(h.HttpFilters, &hcmv3.HttpFilter{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}})
			})
		}, []string{"http_filters[0]: router filter is not last", "is not the router"}},
		{"router without typed config", func(t *testing.T, r *Resources) {
			editHCM(t, api(*r), func(h *hcmv3.HttpConnectionManager) { h.HttpFilters[0].ConfigType = nil })
		}, []string{"router filter has no typed_config"}},
		{"api_listener without RDS", func(t *testing.T, r *Resources) {
			editHCM(t, api(*r), func(h *hcmv3.HttpConnectionManager) {
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: proto.Clone(r.Routes[0]).(*routev3.RouteConfiguration)}
			})
		}, []string{`listener "checkout": api_listener: does not use RDS`}},
		{"api_listener RDS not over ADS", func(t *testing.T, r *Resources) {
			editHCM(t, api(*r), func(h *hcmv3.HttpConnectionManager) {
				h.GetRds().ConfigSource = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/etc/routes.yaml"}}
			})
		}, []string{"rds.config_source is not ads or self"}},
		{"api_listener dangling route", func(t *testing.T, r *Resources) {
			editHCM(t, api(*r), func(h *hcmv3.HttpConnectionManager) { h.GetRds().RouteConfigName = "nope" })
		}, []string{`listener "checkout": api_listener: route "nope" does not exist`}},
		{"api_listener is not an HCM", func(t *testing.T, r *Resources) {
			api(*r).GetApiListener().ApiListener = mustAny(&routerv3.Router{})
		}, []string{`listener "checkout": api_listener: type "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" is not an HTTP connection manager`}},
		{"api_listener trusts xff hops", func(t *testing.T, r *Resources) {
			editHCM(t, api(*r), func(h *hcmv3.HttpConnectionManager) { h.XffNumTrustedHops = 1 })
		}, []string{"xff_num_trusted_hops must be 0"}},
		{"dangling cluster reference", func(t *testing.T, r *Resources) {
			routes(*r)[1].GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "checkout|ghost"}
		}, []string{`routes[1] "pin-canary": cluster "checkout|ghost" does not exist`}},
		{"dangling weighted cluster", func(t *testing.T, r *Resources) {
			split(*r).GetClusters()[0].Name = "checkout|ghost"
		}, []string{`"split": cluster "checkout|ghost" does not exist`}},
		{"route without path match", func(t *testing.T, r *Resources) {
			routes(*r)[0].GetMatch().PathSpecifier = nil
		}, []string{`routes[0] "match-0": no path match`}},
		{"bad header regex", func(t *testing.T, r *Resources) {
			routes(*r)[0].GetMatch().Headers = []*routev3.HeaderMatcher{{Name: "cookie", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "(("}}}}
		}, []string{`headers[0]: regex "(("`}},
		{"zero locality weight", func(t *testing.T, r *Resources) {
			r.Endpoints[0].GetEndpoints()[0].LoadBalancingWeight = nil
		}, []string{`endpoints "checkout|canary": endpoints[0]: load_balancing_weight is 0 or unset`}},
		{"locality without ID", func(t *testing.T, r *Resources) {
			r.Endpoints[0].GetEndpoints()[0].Locality = nil
		}, []string{`endpoints "checkout|canary": endpoints[0]: no locality`}},
		{"zero endpoint weight", func(t *testing.T, r *Resources) {
			r.Endpoints[0].GetEndpoints()[0].GetLbEndpoints()[0].LoadBalancingWeight = wrapperspb.UInt32(0)
		}, []string{"lb_endpoints[0]: load_balancing_weight is 0"}},
		{"DNS name in EDS", func(t *testing.T, r *Resources) {
			r.Endpoints[1].GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().Address = "stable.internal"
		}, []string{`endpoints "checkout|stable": endpoints[0].lb_endpoints[0]: address "stable.internal" is not an IP address`}},
		{"duplicate endpoint address", func(t *testing.T, r *Resources) {
			lbe := r.Endpoints[1].GetEndpoints()[0].GetLbEndpoints()
			lbe[1] = proto.Clone(lbe[0]).(*endpointv3.LbEndpoint)
		}, []string{"lb_endpoints[1]: duplicate address 10.0.0.1:8080"}},
		{"cluster without endpoints", func(t *testing.T, r *Resources) {
			r.Endpoints = r.Endpoints[1:]
		}, []string{`cluster "checkout|canary": no ClusterLoadAssignment "checkout|canary"`}},
		{"unreferenced endpoints", func(t *testing.T, r *Resources) {
			extra := proto.Clone(r.Endpoints[0]).(*endpointv3.ClusterLoadAssignment)
			extra.ClusterName = "checkout|orphan"
			r.Endpoints = append(r.Endpoints, extra)
		}, []string{`endpoints "checkout|orphan": not referenced by any EDS cluster`}},
		{"unreferenced route", func(t *testing.T, r *Resources) {
			extra := proto.Clone(r.Routes[0]).(*routev3.RouteConfiguration)
			extra.Name = "orphan"
			r.Routes = append(r.Routes, extra)
		}, []string{`route "orphan": not referenced by any listener`}},
		{"duplicate cluster", func(t *testing.T, r *Resources) {
			r.Clusters = append(r.Clusters, proto.Clone(r.Clusters[0]).(*clusterv3.Cluster))
		}, []string{`cluster "checkout|canary": duplicate name`}},
		{"duplicate listener", func(t *testing.T, r *Resources) {
			r.Listeners = append(r.Listeners, proto.Clone(r.Listeners[1]).(*listenerv3.Listener))
		}, []string{`listener "checkout|sidecar": duplicate name`, "address 0.0.0.0:9001 already used"}},
		{"EDS not over ADS", func(t *testing.T, r *Resources) {
			r.Clusters[0].GetEdsClusterConfig().EdsConfig = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/eds.yaml"}}
		}, []string{`cluster "checkout|canary": eds_cluster_config.eds_config is not ads or self`}},
		{"lb policy gRPC does not support", func(t *testing.T, r *Resources) {
			r.Clusters[0].LbPolicy = clusterv3.Cluster_MAGLEV
		}, []string{"lb_policy MAGLEV is not supported by gRPC-Go"}},
		{"outlier percent", func(t *testing.T, r *Resources) {
			r.Clusters[0].GetOutlierDetection().EnforcingSuccessRate = wrapperspb.UInt32(101)
		}, []string{"outlier_detection.enforcing_success_rate 101 exceeds 100"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := cloneResources(good)
			c.mut(t, &r)
			wantErrs(t, Check(r), c.want...)
			if err := Check(good); err != nil {
				t.Fatalf("mutation leaked into the original: %v", err)
			}
		})
	}
}

// translateReusing gives Translate's result, reuses the resources of the services whose
// Desired is unchanged, translates the changed ones again, and rejects what Translate
// rejects without recording anything.
func TestTranslateReusing(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs in testdata: %v", err)
	}
	same := func(t *testing.T, got, want Resources) {
		t.Helper()
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("differs from Translate (-want +got):\n%s", diff)
		}
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			desired := readDesired(t, in)
			want, err := Translate(desired)
			if err != nil {
				t.Fatal(err)
			}
			got, memo, err := translateReusing(desired, nil)
			if err != nil {
				t.Fatal(err)
			}
			same(t, got, want)

			// Unchanged: every resource is the very value of the previous call.
			again, memo2, err := translateReusing(desired, memo)
			if err != nil {
				t.Fatal(err)
			}
			same(t, again, want)
			for i := range again.Routes {
				if again.Routes[i] != got.Routes[i] {
					t.Errorf("route %s translated again though unchanged", again.Routes[i].GetName())
				}
			}

			// One service's weights change: only its resources are new.
			changed := slices.Clone(desired)
			d := changed[0]
			d.Weights = map[string]uint32{d.Service.Stable: model.TotalWeight}
			changed[0] = d
			want2, err := Translate(changed)
			if err != nil {
				t.Fatal(err)
			}
			got2, _, err := translateReusing(changed, memo2)
			if err != nil {
				t.Fatal(err)
			}
			same(t, got2, want2)
			for i, rc := range got2.Routes {
				if reused := rc == again.Routes[i]; reused == (rc.GetName() == RouteName(d.Service.Name)) {
					t.Errorf("route %s: reused %v", rc.GetName(), reused)
				}
			}

			// Invalid input: the error Translate gives, and no record.
			bad := slices.Clone(desired)
			b := bad[0]
			b.Weights = map[string]uint32{b.Service.Stable: 1}
			bad[0] = b
			_, werr := Translate(bad)
			_, m, err := translateReusing(bad, memo2)
			if err == nil || werr == nil || err.Error() != werr.Error() || m != nil {
				t.Errorf("invalid input: error %v, memo %v; Translate: %v", err, m, werr)
			}
		})
	}
}

// TestOutlierDetectionExplicit checks that every outlier detection field a client may
// read is written, so that no client depends on applying the proto's defaults itself
// (grpc-js-xds 1.14 crashes on an unset success_rate_* field), and that an ejection
// time longer than Envoy's 300 s maximum raises the maximum as Envoy would.
func TestOutlierDetectionExplicit(t *testing.T) {
	d := baseDesired()
	d.Service.Outlier.BaseEjectionTime = model.Duration(10 * time.Minute)
	got, err := TranslateService(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Clusters) == 0 {
		t.Fatal("no clusters")
	}
	for _, c := range got.Clusters {
		od := c.GetOutlierDetection().ProtoReflect()
		fields := od.Descriptor().Fields()
		for i := 0; i < fields.Len(); i++ {
			f := fields.Get(i)
			// monitors is not implemented by Envoy; a proto3 bool has no presence.
			if f.IsList() || f.Kind() == protoreflect.BoolKind {
				continue
			}
			if !od.Has(f) {
				t.Errorf("cluster %s: outlier_detection.%s unset", c.GetName(), f.Name())
			}
		}
		if m := c.GetOutlierDetection().GetMaxEjectionTime().AsDuration(); m != 10*time.Minute {
			t.Errorf("cluster %s: max_ejection_time %v, want the 10m base ejection time", c.GetName(), m)
		}
	}
}
