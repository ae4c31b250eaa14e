package publish_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/translate"
)

func resolveDesired() translate.Desired {
	return translate.Desired{
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
	}
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
}

// fakeResolver is a fixed name table.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := f[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func TestResolveEndpoints(t *testing.T) {
	r := fakeResolver{
		"stable.internal": {netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("::ffff:10.0.0.1")},
	}
	d := resolveDesired()
	d.Service.Versions[0].Endpoints = []model.Endpoint{{Host: "stable.internal", Port: 8080}, {Host: "10.0.0.1", Port: 8080}}
	got, err := publish.ResolveEndpoints(t.Context(), r, d)
	if err != nil {
		t.Fatal(err)
	}
	want := []model.Endpoint{{Host: "10.0.0.1", Port: 8080}, {Host: "10.0.0.3", Port: 8080}, {Host: "10.0.0.9", Port: 8080}}
	if diff := cmp.Diff(want, got.Service.Versions[0].Endpoints); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	if d.Service.Versions[0].Endpoints[0].Host != "stable.internal" {
		t.Error("ResolveEndpoints modified its input")
	}
	if _, err := translate.TranslateService(got); err != nil {
		t.Errorf("resolved desired does not translate: %v", err)
	}

	// A name marked unhealthy marks every address it resolves to; an IP stays itself.
	d.Unhealthy = map[string][]string{"stable": {"stable.internal:8080"}, "canary": {"10.0.1.1:8080"}}
	got, err = publish.ResolveEndpoints(t.Context(), r, d)
	if err != nil {
		t.Fatal(err)
	}
	wantDown := map[string][]string{"stable": {"10.0.0.1:8080", "10.0.0.3:8080", "10.0.0.9:8080"}, "canary": {"10.0.1.1:8080"}}
	if diff := cmp.Diff(wantDown, got.Unhealthy); diff != "" {
		t.Errorf("unhealthy (-want +got):\n%s", diff)
	}
	if d.Unhealthy["stable"][0] != "stable.internal:8080" {
		t.Error("ResolveEndpoints modified its input's Unhealthy")
	}

	d.Service.Versions[1].Endpoints[0].Host = "gone.internal"
	_, err = publish.ResolveEndpoints(t.Context(), r, d)
	wantErr(t, err, `service.versions[1] "canary": resolve "gone.internal"`)
}
