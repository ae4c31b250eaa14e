package xds

import (
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"gopkg.in/yaml.v3"

	"github.com/octoacme/octoroll/catalog"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/translate")

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
		Protocol           string `yaml:"protocol"`
		Path               string `yaml:"path"`
		Interval           string `yaml:"interval"`
		Timeout            string `yaml:"timeout"`
		HealthyThreshold   uint32 `yaml:"healthyThreshold"`
		UnhealthyThreshold uint32 `yaml:"unhealthyThreshold"`
	} `yaml:"healthCheck"`
	Outlier struct {
		Consecutive5xx     uint32 `yaml:"consecutive5xx"`
		Interval           string `yaml:"interval"`
		BaseEjectionTime   string `yaml:"baseEjectionTime"`
		MaxEjectionPercent uint32 `yaml:"maxEjectionPercent"`
	} `yaml:"outlierDetection"`
}

type inDesired struct {
	Service inService         `yaml:"service"`
	Weights map[string]uint32 `yaml:"weights"`
	Matches []Match           `yaml:"matches"`
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
	dur := func(s string) catalog.Duration {
		if s == "" {
			return 0
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: duration %q: %v", path, s, err)
		}
		return catalog.Duration(d)
	}
	var out []Desired
	for _, d := range in {
		s := d.Service
		svc := catalog.Service{
			Name: s.Name, Domains: s.Domains, Port: s.Port, Stable: s.Stable,
			HealthCheck: catalog.HealthCheck{
				Protocol: s.HealthCheck.Protocol, Path: s.HealthCheck.Path,
				Interval: dur(s.HealthCheck.Interval), Timeout: dur(s.HealthCheck.Timeout),
				HealthyThreshold: s.HealthCheck.HealthyThreshold, UnhealthyThreshold: s.HealthCheck.UnhealthyThreshold,
			},
			Outlier: catalog.Outlier{
				Consecutive5xx: s.Outlier.Consecutive5xx, Interval: dur(s.Outlier.Interval),
				BaseEjectionTime: dur(s.Outlier.BaseEjectionTime), MaxEjectionPercent: s.Outlier.MaxEjectionPercent,
			},
		}
		for _, v := range s.Versions {
			cv := catalog.Version{Name: v.Name, Zone: v.Zone}
			for _, ep := range v.Endpoints {
				host, port, err := net.SplitHostPort(ep)
				if err != nil {
					t.Fatalf("%s: endpoint %q: %v", path, ep, err)
				}
				p, err := strconv.ParseUint(port, 10, 16)
				if err != nil {
					t.Fatalf("%s: endpoint %q: %v", path, ep, err)
				}
				cv.Endpoints = append(cv.Endpoints, catalog.Endpoint{Host: host, Port: uint32(p)})
			}
			svc.Versions = append(svc.Versions, cv)
		}
		out = append(out, Desired{Service: svc, Weights: d.Weights, Matches: d.Matches})
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
		t.Fatalf("%v (run go test ./xds -run TestTranslateGolden -update to create it)", err)
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
	inputs, err := filepath.Glob("testdata/translate/*.in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no inputs in testdata/translate")
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
