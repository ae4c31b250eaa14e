package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// otherName is the second service of the publication tests.
const otherName = "other"

// twoServiceCatalog declares svcName (v1 stable, v2) and otherName on their own ports,
// each version at its own backend.
func twoServiceCatalog(t *testing.T, v1, v2, o1, o2 string) *catalog.Catalog {
	t.Helper()
	cat := testCatalog(t, v1, v2)
	other := testCatalog(t, o1, o2).Services[0]
	other.Name, other.Port = otherName, 10002
	cat.Services = append(cat.Services, other)
	return cat
}

// halfSpec is crashSpec starting at 50 %.
func halfSpec(service string) controller.Spec {
	spec := crashSpec()
	spec.Service = service
	spec.Stages = spec.Stages[2:] // the 50 % stage
	return spec
}

// poison rewrites the persisted active rollout id so that its canary version is a name
// translation refuses, as a rollout persisted by an older, laxer octoroll can be.
func poison(t *testing.T, st *store.Store, id string) {
	t.Helper()
	doc, err := st.GetRollout(id)
	if err != nil {
		t.Fatal(err)
	}
	var ro controller.Rollout
	if err := json.Unmarshal(doc, &ro); err != nil {
		t.Fatal(err)
	}
	ro.Canary, ro.Spec.Canary.Version = "v|2", "v|2"
	ro.Spec.Canary.Endpoints = []string{"127.0.0.1:9"}
	doc, err = json.Marshal(ro)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutRollout(ro.ID, ro.Service, true, doc, nil); err != nil {
		t.Fatal(err)
	}
}

// waitOnlyVersion polls the client's RPCs in windows of n until a window is served by
// version alone without failures, or the deadline passes; it returns how long it took.
func waitOnlyVersion(t *testing.T, c *xdstest.Client, version string, n int64, deadline time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if err := c.Reset(waitTimeout); err != nil {
			t.Fatal(err)
		}
		r, err := c.WaitTotal(n, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed == 0 && r.OK[version] == r.Total() {
			return time.Since(start)
		}
		if time.Since(start) > deadline {
			t.Fatalf("client not on 100%% %s within %s: %v, failed %d %v", version, deadline, r.OK, r.Failed, r.Errors)
		}
	}
}

// TestPoisonedServiceDoesNotHoldOthers: a persisted rollout of one service that can no
// longer be translated does not stop octoroll from starting; that service is reported
// failing (status, event) and serves its catalog state at its known-good version, while
// an abort of another service puts its real gRPC xDS client on 100 % known-good within
// a second. An abort of the poisoned rollout puts its service back on its known-good
// version, published, without recording the version that cannot be translated, so a
// further restart serves it too.
func TestPoisonedServiceDoesNotHoldOthers(t *testing.T) {
	cat := twoServiceCatalog(t, xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2"),
		xdstest.StartBackend(t, "o1"), xdstest.StartBackend(t, "o2"))
	h := newHarness(t, cat, false)
	ctx := context.Background()
	if _, err := h.run.Start(ctx, halfSpec(svcName), "alice"); err != nil {
		t.Fatal(err)
	}
	a, err := h.run.Start(ctx, halfSpec(otherName), "alice")
	if err != nil {
		t.Fatal(err)
	}
	poison(t, h.st, a.ID)
	if err := h.st.Close(); err != nil {
		t.Fatal(err)
	}
	h.open(true) // a restart: runner.New must not fail on the poisoned rollout

	v, _ := h.run.Service(otherName)
	if v.Publication == nil || v.Publication.OK || !strings.Contains(v.Publication.Error, "not a valid name") {
		t.Fatalf("poisoned service publication %+v, want failing on the version name", v.Publication)
	}
	if !v.Publication.Serving || !v.Publication.Fallback || v.Weights["v1"] != 10000 {
		t.Fatalf("poisoned service serves %v (publication %+v), want its catalog state at 100 %% v1", v.Weights, v.Publication)
	}
	ca := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "client-a", Target: "xds:///" + otherName})
	waitOnlyVersion(t, ca, "o1", 100, waitTimeout)
	evs := h.events(a.ID)
	if i := slices.Index(kinds(evs), controller.EventPublishFailed); i < 0 {
		t.Fatalf("no %s event for the poisoned rollout: %v", controller.EventPublishFailed, kinds(evs))
	}
	if got := served(t, h.xs); got["v2"] != 5000 {
		t.Fatalf("served %v after the restart, want the persisted 50 %%", got)
	}

	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "client-b", Target: "xds:///" + svcName})
	waitConverged(t, h.xs, 1)
	waitSplit(t, c, 5000, 1000)

	ro, err := h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdAbort, Actor: "bob", Reason: "checkout errors"})
	if err != nil {
		t.Fatalf("abort: %v", err)
	}
	if ro.State != controller.StateRolledBack {
		t.Fatalf("abort answered %s, want rolled_back", ro.State)
	}
	took := waitOnlyVersion(t, c, "v1", 200, time.Second)
	t.Logf("client on 100%% v1 %s after the abort answered", took)
	if got := served(t, h.xs); got["v1"] != 10000 {
		t.Errorf("served %v after the abort", got)
	}
	if v, _ := h.run.Service(svcName); v.Publication == nil || !v.Publication.OK {
		t.Errorf("aborted service publication %+v, want ok", v.Publication)
	}
	if v, _ := h.run.Service(otherName); v.Publication == nil || v.Publication.OK {
		t.Errorf("poisoned service publication %+v, want still failing", v.Publication)
	}
	// The failure is reported once, not on every retry.
	for range 3 {
		h.step()
	}
	n := 0
	for _, e := range h.events(a.ID) {
		if e.Kind == controller.EventPublishFailed {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d %s events after retries, want 1", n, controller.EventPublishFailed)
	}

	// The operator aborts the poisoned rollout: known-good, published, and the version
	// that cannot be translated is not recorded.
	ro, err = h.run.Command(ctx, otherName, controller.Command{Kind: controller.CmdAbort, Actor: "bob", Reason: "bad version name"})
	if err != nil {
		t.Fatalf("abort of the poisoned rollout: %v", err)
	}
	if ro.State != controller.StateRolledBack {
		t.Fatalf("abort answered %s, want rolled_back", ro.State)
	}
	v, _ = h.run.Service(otherName)
	if v.Publication == nil || !v.Publication.OK || v.Publication.Fallback || v.Weights["v1"] != 10000 {
		t.Fatalf("after the abort: weights %v, publication %+v, want 100 %% v1 published", v.Weights, v.Publication)
	}
	if slices.Contains(v.Service.VersionNames(), "v|2") {
		t.Errorf("the untranslatable version was recorded: %v", v.Service.VersionNames())
	}
	took = waitOnlyVersion(t, ca, "o1", 200, time.Second)
	t.Logf("poisoned service's client on 100%% o1 %s after its abort answered", took)

	h.restart()
	for _, name := range []string{svcName, otherName} {
		v, _ := h.run.Service(name)
		if v.Publication == nil || !v.Publication.OK || v.Weights["v1"] != 10000 || v.Active != nil {
			t.Errorf("%s after a further restart: weights %v, publication %+v, active %v", name, v.Weights, v.Publication, v.Active)
		}
	}
}

// flakyDNS answers the names in addrs, and fails every lookup while down.
type flakyDNS struct {
	mu    sync.Mutex
	addrs map[string][]netip.Addr
	down  bool
	calls int
}

func (d *flakyDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.down {
		return nil, errors.New("lookup " + host + ": server misbehaving")
	}
	a, ok := d.addrs[host]
	if !ok {
		return nil, errors.New("lookup " + host + ": no such host")
	}
	return a, nil
}

func (d *flakyDNS) setDown(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = down
}

// TestDNSFailureThenRecoveryRepublishes: a rollout whose canary's DNS name does not
// resolve is refused at the door (an invalid spec naming the endpoint; nothing starts).
// A catalog version whose name does not resolve leaves that service unpublished
// (reported once, the other service serves); when DNS answers, the next tick publishes
// it. A name that resolved keeps its last good answer while DNS fails, and the status
// says so.
func TestDNSFailureThenRecoveryRepublishes(t *testing.T) {
	dns := &flakyDNS{addrs: map[string][]netip.Addr{
		"stable.internal": {netip.MustParseAddr("127.0.0.1")},
		"canary.internal": {netip.MustParseAddr("127.0.0.2")},
	}}
	cat := twoServiceCatalog(t, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")
	cat.Services[0].Versions[0].Endpoints = []catalog.Endpoint{{Host: "stable.internal", Port: 8080}}
	clock := &fakeClock{now: t0}
	st, err := store.Open(t.TempDir(), store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	run, err := runner.New(context.Background(), cat, runner.Options{
		Log: log, Store: st, XDS: xds.NewServer(log, xds.Options{}), Metrics: cleanMetrics(), Now: clock.Now, Resolver: dns, DNSRefresh: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	dns.setDown(true)
	spec := halfSpec(otherName)
	spec.Canary = controller.Canary{Version: "v3", Endpoints: []string{"canary.internal:8080"}}
	if _, err := run.Start(ctx, spec, "alice"); !errors.Is(err, controller.ErrInvalidSpec) ||
		!strings.Contains(err.Error(), `canary.endpoints[0]: "canary.internal:8080" does not resolve`) {
		t.Fatalf("Start with an unresolvable canary: %v, want an invalid spec naming canary.endpoints[0]", err)
	}
	if v, _ := run.Service(otherName); v.Active != nil {
		t.Fatalf("refused rollout is active: %+v", v.Active)
	}

	// The catalog gives the other service a version at the name DNS does not answer.
	next := *cat
	next.Services = slices.Clone(cat.Services)
	next.Services[1].Versions = append(slices.Clone(next.Services[1].Versions),
		catalog.Version{Name: "v3", Endpoints: []catalog.Endpoint{{Host: "canary.internal", Port: 8080}}})
	if err := run.SetCatalog(ctx, &next); err != nil {
		t.Fatalf("SetCatalog: %v", err)
	}
	v, _ := run.Service(otherName)
	if v.Publication == nil || v.Publication.OK || !strings.Contains(v.Publication.Error, "canary.internal") {
		t.Fatalf("publication with DNS down %+v, want failing on canary.internal", v.Publication)
	}
	if v.Weights["v1"] != 10000 {
		t.Errorf("weights served while not published %v, want the last good 100 %% v1", v.Weights)
	}
	// The stable name resolved before DNS went down: its last good answer serves.
	clock.Advance(2 * time.Minute)
	run.Evaluate(ctx)
	sv, _ := run.Service(svcName)
	if sv.Publication == nil || !sv.Publication.OK || len(sv.Publication.Stale) != 1 || !strings.Contains(sv.Publication.Stale[0], "stable.internal") {
		t.Errorf("service with a stale answer: %+v, want ok with a note on stable.internal", sv.Publication)
	}

	dns.setDown(false)
	clock.Advance(time.Second)
	run.Evaluate(ctx) // the next tick
	v, _ = run.Service(otherName)
	if v.Publication == nil || !v.Publication.OK {
		t.Fatalf("publication after DNS recovered %+v, want ok", v.Publication)
	}
	evs, _, err := run.Events(runner.EventQuery{Service: otherName})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Kind)
	}
	if i, j := slices.Index(got, controller.EventPublishFailed), slices.Index(got, controller.EventPublished); i < 0 || j < i {
		t.Errorf("events %v, want %s then %s", got, controller.EventPublishFailed, controller.EventPublished)
	}

	// With DNS answering, the rollout of the new version starts and is served.
	spec.Canary = controller.Canary{Version: "v3"}
	if _, err := run.Start(ctx, spec, "alice"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if v, _ := run.Service(otherName); v.Weights["v3"] != 5000 || v.Publication == nil || !v.Publication.OK {
		t.Errorf("after Start: weights %v, publication %+v, want v3=5000 served", v.Weights, v.Publication)
	}
}

// TestPoisonedKnownGoodLeftOut: a service state an older octoroll persisted with a
// version that cannot be translated as its known-good one (the abort of a rollout of
// canary v|2 recorded it) is loaded without that version: the service serves its
// catalog's stable version, published, instead of nothing.
func TestPoisonedKnownGoodLeftOut(t *testing.T) {
	cat := twoServiceCatalog(t, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")
	h := newHarness(t, cat, false)
	doc := `{"stable":"v|2","versions":[{"name":"v|2","endpoints":["127.0.0.1:9"]},{"name":"v3","endpoints":["127.0.0.1:10"]}]}`
	if err := h.st.PutState("service/"+otherName, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	h.restart()
	v, _ := h.run.Service(otherName)
	if v.Publication == nil || !v.Publication.OK || v.Weights["v1"] != 10000 || v.KnownGood != "v1" {
		t.Fatalf("after the restart: known-good %s, weights %v, publication %+v; want v1 at 100 %%, published", v.KnownGood, v.Weights, v.Publication)
	}
	if got := strings.Join(v.Service.VersionNames(), ","); got != "v1,v2,v3" {
		t.Errorf("versions %s, want the catalog's and the valid added one", got)
	}
}
