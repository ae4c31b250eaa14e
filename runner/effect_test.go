package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/admin"
	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/report"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// routeAckedAt is the instant the tracker saw the node ACK its route, from the xds
// server's proxy report.
func routeAckedAt(t *testing.T, h *harness, node string) time.Time {
	t.Helper()
	for _, p := range h.xs.Proxies() {
		if p.NodeID == node {
			return p.Types[resource.RouteType].AckedAt
		}
	}
	t.Fatalf("proxy %s not connected", node)
	return time.Time{}
}

// strictCatalog is testCatalog at real backends, its proxies not optional.
func strictCatalog(t *testing.T) *catalog.Catalog {
	cat := testCatalog(t, xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2"))
	cat.Services[0].ProxiesOptional = false
	return cat
}

// TestUnresolvableCanaryRefusedThenServed: a canary whose DNS name does not resolve is
// refused at Start (nothing moves, the client stays on v1); once DNS answers the same
// spec starts, is published, the real client ACKs and the stage runs. (A publication
// that fails after the start holds "not published": TestRefusedPublishRetried.)
func TestUnresolvableCanaryRefusedThenServed(t *testing.T) {
	canary := xdstest.StartBackend(t, "v2")
	_, port, _ := net.SplitHostPort(canary)
	dns := &flakyDNS{addrs: map[string][]netip.Addr{"canary.internal": {netip.MustParseAddr("127.0.0.1")}}, down: true}
	cat := strictCatalog(t)
	cat.Services[0].Versions = cat.Services[0].Versions[:1] // v2 comes with the rollout
	h := newHarnessWith(t, cat, true, func(h *harness) { h.resolver = dns })
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "client-dns", Target: "xds:///" + svcName})
	waitConverged(t, h.xs, 1)

	spec := halfSpec(svcName)
	spec.Canary = controller.Canary{Version: "v2", Endpoints: []string{"canary.internal:" + port}}
	if _, err := h.run.Start(context.Background(), spec, "alice"); err == nil || !strings.Contains(err.Error(), "does not resolve") {
		t.Fatalf("start with the canary unresolvable: %v, want refused naming the endpoint", err)
	}
	waitOnlyVersion(t, c, "v1", 200, waitTimeout)

	dns.setDown(false)
	ro, err := h.run.Start(context.Background(), spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// v2 is new to the client: its cluster is loaded before the route gives it weight.
	waitWarm(t, h, "v2")
	if err := c.Reset(waitTimeout); err != nil {
		t.Fatal(err)
	}
	h.step()
	waitConverged(t, h.xs, 1)
	h.step()
	got := h.active()
	if got.Progress.AckedAt.IsZero() || strings.HasPrefix(got.Reason, "not published") {
		t.Fatalf("after DNS answered: %s %q acked %s, want the ACK recorded", got.State, got.Reason, got.Progress.AckedAt)
	}
	// The switch to the new cluster fails no RPC.
	r, err := c.WaitFor(waitTimeout, func(r xdstest.Report) bool { return r.OK["v2"] >= 200 || r.Failed > 0 })
	if err != nil || r.Failed != 0 {
		t.Fatalf("switch to v2: %d failed RPCs %v (%v), want none", r.Failed, r.Errors, err)
	}
	waitSplit(t, c, 5000, 1000)
	for got.State == controller.StateProgressing {
		h.step()
		got = h.persisted(ro.ID)
	}
	if got.State != controller.StateMonitoring {
		t.Fatalf("stage did not complete after the publication: %s %q", got.State, got.Reason)
	}
}

// waitWarm waits until every proxy of the service's route holds the cluster of version.
func waitWarm(t *testing.T, h *harness, version string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		w := h.xs.ClusterWarmth(svcName, version)
		if w.Subscribed > 0 && w.Done() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster of %s not held by every proxy: %+v", version, w)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNewCanaryClusterWarmedBeforeWeights: a canary version new to the proxies is first
// served with its cluster defined at weight 0 and no traffic; the rollout holds as not
// published until every proxy holds the cluster (CDS and EDS ACKed), and only then are
// the stage's weights published. Their ACK, not the warming, starts the stage clock.
func TestNewCanaryClusterWarmedBeforeWeights(t *testing.T) {
	canary := xdstest.StartBackend(t, "v2")
	cat := strictCatalog(t)
	cat.Services[0].Versions = cat.Services[0].Versions[:1]
	h := newHarness(t, cat, true)
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "client-warm", Target: "xds:///" + svcName})
	waitConverged(t, h.xs, 1)
	if w := h.xs.ClusterWarmth(svcName, "v2"); w.Done() || w.Subscribed != 1 {
		t.Fatalf("before the rollout: warmth %+v, want the client subscribed and not holding v2", w)
	}

	spec := halfSpec(svcName)
	spec.Canary = controller.Canary{Version: "v2", Endpoints: []string{canary}}
	ro, err := h.run.Start(context.Background(), spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := h.run.Service(svcName)
	if _, defined := v.Service.Version("v2"); !defined || v.Weights["v2"] != 0 || v.Weights["v1"] != catalog.TotalWeight {
		t.Fatalf("first publication: versions %v weights %v, want v2 defined at weight 0", v.Service.Versions, v.Weights)
	}
	waitWarm(t, h, "v2")
	warmedAt := h.clock.Now()
	if err := c.Reset(waitTimeout); err != nil {
		t.Fatal(err)
	}
	r, err := c.WaitTotal(200, waitTimeout)
	if err != nil || r.OK["v2"] != 0 || r.Failed != 0 {
		t.Fatalf("while warming: %v, %d failed (%v), want every RPC on v1", r.OK, r.Failed, err)
	}
	if got := h.active(); !got.Progress.AckedAt.IsZero() {
		t.Fatalf("stage clock started at %s while the cluster was warming", got.Progress.AckedAt)
	}

	// The next tick publishes the stage's weights: the client held the cluster before.
	h.step()
	got := h.persisted(ro.ID)
	if v, _ := h.run.Service(svcName); v.Weights["v2"] != 5000 {
		t.Fatalf("after the cluster was held: weights %v, want the stage's", v.Weights)
	}
	// The check of the same tick may already see the client's ACK of the weights (a
	// fast client ACKs within the tick); the stage clock is compared with it below.
	if strings.HasPrefix(got.Reason, "not published") {
		t.Fatalf("stage weights just published: %q, want them published", got.Reason)
	}
	waitConverged(t, h.xs, 1)
	ackAt := routeAckedAt(t, h, "client-warm")
	if !ackAt.After(warmedAt) {
		t.Fatalf("route with v2 weight ACKed at %s, not after the cluster was held (%s)", ackAt, warmedAt)
	}
	h.step()
	got = h.persisted(ro.ID)
	if !got.Progress.AckedAt.Equal(ackAt) {
		t.Fatalf("stage clock starts %s, want the ACK of the stage's weights %s", got.Progress.AckedAt, ackAt)
	}
	r, err = c.WaitFor(waitTimeout, func(r xdstest.Report) bool { return r.OK["v2"] >= 200 || r.Failed > 0 })
	if err != nil || r.Failed != 0 {
		t.Fatalf("switch to v2: %d failed RPCs %v (%v), want none", r.Failed, r.Errors, err)
	}
}

// TestZeroProxiesHoldThenStageClockAtAck: with no proxy subscribed a rollout holds "no
// proxy subscribed" (zero proxies is not every proxy ACKed). When a real client
// subscribes later, its ACK instant, as the tracker saw it, starts the stage clock: not
// the check that noticed it.
func TestZeroProxiesHoldThenStageClockAtAck(t *testing.T) {
	h := newHarness(t, strictCatalog(t), true)
	spec := halfSpec(svcName)
	spec.Warmup = new(model.ZeroableDuration) // the stage clock from the ACK on
	ro, err := h.run.Start(context.Background(), spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	h.step()
	got := h.active()
	if !strings.Contains(got.Reason, "no proxy subscribed") || !got.Progress.AckedAt.IsZero() {
		t.Fatalf("no proxy: %s %q acked %s, want holding on no proxy subscribed", got.State, got.Reason, got.Progress.AckedAt)
	}
	v, _ := h.run.Service(svcName)
	if v.Convergence.Done() {
		t.Errorf("convergence %+v with no proxy reported done", v.Convergence)
	}

	h.clock.Advance(3 * time.Second)
	xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "client-late", Target: "xds:///" + svcName})
	waitConverged(t, h.xs, 1)
	ackAt := routeAckedAt(t, h, "client-late")
	if conv := h.xs.Convergence(svcName); !conv.AckedAt.Equal(ackAt) {
		t.Errorf("convergence ACK instant %s, the proxy's %s", conv.AckedAt, ackAt)
	}
	h.step()
	got = h.persisted(ro.ID)
	if !got.Progress.AckedAt.Equal(ackAt) || got.Progress.AckedAt.Equal(got.Progress.LastCheck) {
		t.Fatalf("stage clock starts %s, want the tracker's ACK instant %s (check at %s)", got.Progress.AckedAt, ackAt, got.Progress.LastCheck)
	}
	if want := got.Progress.LastCheck.Sub(ackAt); got.Progress.Monitored.D() != want {
		t.Errorf("monitored %s, want the %s since the ACK", got.Progress.Monitored, want)
	}
	evs := h.events(ro.ID)
	i := slices.Index(kinds(evs), controller.EventAcked)
	if i < 0 || !evs[i].Time.Equal(ackAt) || !strings.Contains(evs[i].Reason, "13s after they were set") {
		t.Errorf("acked event %+v, want it at %s, 13s after the weights were set", evs[i], ackAt)
	}
}

// TestProxiesOptionalProceeds: a service whose proxies may be absent runs its rollout
// with none; the stage clock starts when the weights were published.
func TestProxiesOptionalProceeds(t *testing.T) {
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	spec := halfSpec(svcName)
	spec.Warmup = new(model.ZeroableDuration) // the stage clock from the publication on
	ro, err := h.run.Start(context.Background(), spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	h.step()
	got := h.persisted(ro.ID)
	if !got.Progress.AckedAt.Equal(t0) || got.Progress.LastDecision != controller.DecisionContinue {
		t.Fatalf("proxies optional: acked %s decision %s %q, want the publication instant %s and continue",
			got.Progress.AckedAt, got.Progress.LastDecision, got.Reason, t0)
	}
}

// TestTimeToRestoreIsLastProxyAck: after an abort the service is restoring until every
// proxy ACKed the known-good weights (with none subscribed, it waits); the time to
// restore ends at the last proxy's ACK instant, as the tracker saw it.
func TestTimeToRestoreIsLastProxyAck(t *testing.T) {
	h := newHarness(t, strictCatalog(t), true)
	ctx := context.Background()
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "client-a", Target: "xds:///" + svcName})
	ro, err := h.run.Start(ctx, halfSpec(svcName), "alice")
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, h.xs, 1)
	c.Stop()
	deadline := time.Now().Add(waitTimeout)
	for h.xs.Convergence(svcName).Subscribed != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stopped client is still subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.clock.Advance(5 * time.Second)
	abortedAt := h.clock.Now()
	if _, err := h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdAbort, Actor: "bob", Reason: "errors"}); err != nil {
		t.Fatal(err)
	}
	h.step()
	v, _ := h.run.Service(svcName)
	if v.Restore == nil || v.Restore.Done || v.Restore.Summary() != "aborted: restoring, no proxy subscribed" {
		t.Fatalf("restore with no proxy %+v, want restoring", v.Restore)
	}

	h.clock.Advance(time.Minute) // past the ACK timeout: recorded as not confirmed, still watched
	h.step()
	h.clock.Advance(2*time.Second + 345*time.Millisecond)
	xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "client-b", Target: "xds:///" + svcName})
	waitConverged(t, h.xs, 1)
	ackAt := routeAckedAt(t, h, "client-b")
	h.step()
	v, _ = h.run.Service(svcName)
	if v.Restore == nil || !v.Restore.Done || !v.Restore.RestoredAt.Equal(ackAt) || v.Restore.Summary() != "aborted: 1 of 1 proxies on v1" {
		t.Fatalf("restore %+v, want done at the ACK %s", v.Restore, ackAt)
	}
	evs := h.events(ro.ID)
	last := evs[len(evs)-1]
	if last.Kind != controller.EventAcked || !last.Time.Equal(ackAt) {
		t.Fatalf("last event %s at %s, want the restore confirmation at the ACK %s", last.Kind, last.Time, ackAt)
	}
	inc := report.Build(h.persisted(ro.ID), evs).Incident
	want := ackAt.Sub(abortedAt)
	if inc == nil || !inc.Restored || inc.TimeToRestore.D() != want {
		t.Fatalf("incident %+v, want restored after %s", inc, want)
	}
	if !strings.Contains(last.Reason, "1m22s after the rollback") {
		t.Errorf("restore event %q, want the rounded time to restore", last.Reason)
	}
	held := slices.IndexFunc(evs, func(e controller.Event) bool {
		return e.Kind == controller.EventHold && strings.Contains(e.Reason, "restore not confirmed")
	})
	if held < 0 {
		t.Errorf("no restore-not-confirmed event before the late ACK: %v", kinds(evs))
	}
}

// failWrites makes every store write of this process fail, as a full disk does: bbolt
// writes its pages past the state file's first two (its meta pages), and the file size
// limit refuses them (SIGXFSZ is ignored, so the write returns EFBIG). The returned
// function lifts the limit.
func failWrites(t *testing.T) func() {
	t.Helper()
	signal.Ignore(syscall.SIGXFSZ)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 8192
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(restore)
	return restore
}

// TestStoreFailingRollbackPublishes: with the real store's writes failing, an operator's
// abort is published at once (the real client is on 100 % v1 within a second), answered
// 202 with rolled_back and a warning, /readyz fails and says why; once the store works
// again the next tick persists the rollback, which survives a restart.
func TestStoreFailingRollbackPublishes(t *testing.T) {
	h := newHarness(t, strictCatalog(t), true)
	ctx := context.Background()
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "client-disk", Target: "xds:///" + svcName})
	ro, err := h.run.Start(ctx, halfSpec(svcName), "alice")
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, h.xs, 1)
	h.step()
	waitSplit(t, c, 5000, 1000)
	srv := httptest.NewServer(admin.New(h.log, admin.Options{Backend: h.run, Ready: h.run.StoreError,
		Token: "tok", Addr: "127.0.0.1:0", Now: h.clock.Now}).Handler())
	defer srv.Close()
	call := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	lift := failWrites(t)
	if err := h.st.PutState("probe", []byte(`{}`)); err == nil {
		t.Fatal("the store still writes under the file size limit")
	}
	// A transition that is not a move to known-good still persists first: refused.
	if _, err := h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdPause, Actor: "bob"}); err == nil {
		t.Fatal("pause accepted while the store fails")
	}
	start := time.Now()
	status, body := call("POST", "/api/v1/services/"+svcName+"/abort", `{"reason":"disk full and the canary fails"}`)
	var d api.RolloutDetail
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("abort answer %d %s: %v", status, body, err)
	}
	if status != http.StatusAccepted || d.State != controller.StateRolledBack || !strings.HasPrefix(d.Warning, "not yet persisted: ") ||
		strings.Contains(d.Warning, h.dir) {
		t.Fatalf("abort answered %d %s %q, want 202 rolled_back with a warning naming no path", status, d.State, d.Warning)
	}
	t.Logf("abort: %d, %s; %s", status, d.RestoreSummary, d.Warning)
	waitOnlyVersion(t, c, "v1", 200, time.Second)
	t.Logf("client on 100%% v1 %s after the abort was sent", time.Since(start).Round(time.Millisecond))
	status, body = call("GET", "/readyz", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "store: write failing: ") {
		t.Fatalf("/readyz %d %s, want 503 saying the store fails", status, body)
	}
	t.Logf("/readyz: %s", body)
	if got := h.persisted(ro.ID); got.State != controller.StateProgressing {
		t.Fatalf("persisted %s while the store fails", got.State)
	}
	if got, err := h.run.Rollout(ro.ID); err != nil || got.State != controller.StateRolledBack {
		t.Errorf("rollout as the API reads it: %s %v, want rolled_back", got.State, err)
	}
	h.step() // still failing: nothing lost
	if h.run.StoreError() == nil {
		t.Fatal("store error cleared while writes fail")
	}

	lift()
	h.step() // the republish tick writes what is pending
	if err := h.run.StoreError(); err != nil {
		t.Fatalf("store error after the store works again: %v", err)
	}
	if status, body := call("GET", "/readyz", ""); status != http.StatusOK {
		t.Errorf("/readyz %d %s after the store works again", status, body)
	}
	if got := h.persisted(ro.ID); got.State != controller.StateRolledBack || !got.Aborted {
		t.Fatalf("persisted %s after the store recovered, want rolled_back", got.State)
	}
	if !slices.Contains(kinds(h.events(ro.ID)), controller.EventRolledBack) {
		t.Errorf("events %v: the rollback is not recorded", kinds(h.events(ro.ID)))
	}
	h.restart()
	if got := served(t, h.xs); got["v1"] != 10000 {
		t.Fatalf("after a restart serves %v, want 100%% v1", got)
	}
	if v, _ := h.run.Service(svcName); v.Active != nil || v.KnownGood != "v1" {
		t.Fatalf("after a restart the service is %+v, want idle on v1", v)
	}
	if got, err := h.run.Rollout(ro.ID); err != nil || got.State != controller.StateRolledBack {
		t.Fatalf("after a restart the rollout is %s %v", got.State, err)
	}
}

// refusingXDS is the real xds server, except that Apply fails while refuse is set, as
// a cache that refuses a publish does (nothing in a translated set makes the real one
// refuse it).
type refusingXDS struct {
	*xds.Server
	mu     sync.Mutex
	refuse bool
}

func (x *refusingXDS) Apply(changes map[string]xds.Change) error {
	x.mu.Lock()
	refuse := x.refuse
	x.mu.Unlock()
	if refuse {
		return errors.New("publish xds resources: cache refused the set")
	}
	return x.Server.Apply(changes)
}

func (x *refusingXDS) set(refuse bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.refuse = refuse
}

// TestRefusedPublishRetried: when the xds server refuses the whole published set,
// nothing's status changes, yet every tick publishes again until it is served; the
// rollout holds on "not published" meanwhile.
func TestRefusedPublishRetried(t *testing.T) {
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	st, err := store.Open(t.TempDir(), store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	xs := &refusingXDS{Server: xds.NewServer(log, xds.Options{})}
	clock := &fakeClock{now: t0}
	run, err := runner.New(context.Background(), testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), runner.Options{
		Log: log, Store: st, XDS: xs, Metrics: cleanMetrics(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	xs.set(true)
	ro, err := run.Start(ctx, halfSpec(svcName), "alice")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Advance(checkEvery)
		run.Evaluate(ctx)
	}
	v, _ := run.Service(svcName)
	if got := servedWeights(xs.Server, svcName); got["v2"] != 0 || v.Active == nil ||
		!strings.Contains(v.Active.Reason, "not published: publish xds resources: cache refused the set") {
		t.Fatalf("while refused: serves %v, rollout %q", got, v.Active.Reason)
	}
	xs.set(false)
	clock.Advance(checkEvery)
	run.Evaluate(ctx)
	if got := servedWeights(xs.Server, svcName); got["v2"] != 5000 {
		t.Fatalf("after the server takes sets again: serves %v, want v2=5000", got)
	}
	clock.Advance(checkEvery)
	run.Evaluate(ctx)
	if got, _ := run.Rollout(ro.ID); got.Progress.AckedAt.IsZero() || strings.HasPrefix(got.Reason, "not published") {
		t.Errorf("after the publish: %q acked %s, want running", got.Reason, got.Progress.AckedAt)
	}
}
