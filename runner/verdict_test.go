package runner_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/metrics/envoytest"
	"github.com/octoacme/octoroll/metrics/promtest"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

// The verdicts of the analysis on real sources: a real Prometheus server scraping, every
// second, real exporters of Envoy-shaped cluster stats on octoroll's ×1.1 bucket ladder
// and on Envoy's default buckets, and octoroll's embedded scrape source reading the same
// exporters. The runner
// runs on the wall clock with a one-stage plan of seconds; each case drives both
// versions' traffic and waits for the verdict.

// flow is one version's traffic at the exporter: its latencies placed around p99, or,
// with sigma, drawn request by request from the lognormal of that σ and P99.
type flow struct {
	rps, errFrac float64
	p99          time.Duration
	sigma        float64
}

type verdictCase struct {
	name   string
	v1, v2 flow
	// tweak adjusts the spec.
	tweak func(*controller.Spec)
	// want waits for the verdict on the rollout and returns when it is reached.
	want func(t *testing.T, w *watcher)
	// interrupt, when set, takes the source away once a clean check judged the
	// analysis window.
	interrupt bool
	// bySource, when set, replaces want per source.
	bySource map[string]func(t *testing.T, w *watcher)
	// envoyBuckets counts latencies in Envoy's default buckets instead of the ×1.1 ladder.
	envoyBuckets bool
}

var (
	base   = flow{rps: 300, errFrac: 0.002, p99: 100 * time.Millisecond}
	canary = flow{rps: 150, errFrac: 0.002, p99: 100 * time.Millisecond}
)

func verdictCases() []verdictCase {
	with := func(f flow, mod func(*flow)) flow { mod(&f); return f }
	return []verdictCase{
		{name: "healthy", v1: base, v2: canary, want: func(t *testing.T, w *watcher) {
			w.until(t, "Go: the stage completes", func(ro controller.Rollout) bool { return ro.State == controller.StateMonitoring })
		}},
		{name: "errors", v1: base, v2: with(canary, func(f *flow) { f.errFrac = 0.05 }), want: func(t *testing.T, w *watcher) {
			ro := w.until(t, "rollback", terminal)
			if ro.State != controller.StateRolledBack || !strings.Contains(ro.Reason, "error rate more than 1 pp above baseline") {
				t.Fatalf("5%% errors: %s (%s), want rolled back on the error rate", ro.State, ro.Reason)
			}
		}},
		// Latency is a test on the histograms: the share of canary requests slower than
		// ×1.1 (pause) or ×1.25 (rollback) the stable P99, against 1 %; the rollback
		// bound rounded up to the ladder's next bucket bound, the pause share read
		// inside its bucket, which is the share at the bucket's upper bound when no
		// request is slower than that bound (or every one is). The exporter puts each
		// version's requests in the two buckets around its P99, so with the stable P99
		// at 100 ms (in the bucket up to 106.7 ms) the pause share is read at 117.4 ms
		// and the rollback bound is 142 ms. The stage lasts 15 s: the stable side needs about 10 s of
		// requests before its P99 can be placed at the tests' confidence.
		{name: "latency50", v1: base, v2: with(canary, func(f *flow) { f.p99 = 150 * time.Millisecond }), tweak: longStage,
			want: func(t *testing.T, w *watcher) {
				// 2.3 % of the canary's requests are slower than 142 ms: a no-go once the
				// analysis window spans the sustain window, maybe after a pause on ×1.1.
				ro := w.until(t, "rollback", terminal)
				if ro.State != controller.StateRolledBack || !strings.Contains(ro.Reason, "P99 latency more than ×1.25 baseline") {
					t.Fatalf("+50%% P99: %s (%s), want rolled back on P99", ro.State, ro.Reason)
				}
			}},
		{name: "latency30", v1: base, v2: with(canary, func(f *flow) { f.p99 = 130 * time.Millisecond }), tweak: longStage,
			want: func(t *testing.T, w *watcher) {
				// Every canary request is slower than 117.4 ms, none than 142 ms: a pause.
				ro := w.until(t, "pause", func(ro controller.Rollout) bool { return ro.State != controller.StateProgressing })
				if ro.State != controller.StatePaused || !strings.Contains(ro.Reason, "P99 latency more than ×1.1 baseline") {
					t.Fatalf("+30%% P99: %s (%s), want paused on P99", ro.State, ro.Reason)
				}
			}},
		// No canary request is slower than 117.4 ms: too small a regression for the
		// ladder to show at ×1.1, the stage completes without a pause.
		{name: "latency15", v1: base, v2: with(canary, func(f *flow) { f.p99 = 115 * time.Millisecond }), tweak: longStage,
			want: completesUnpaused("+15% P99")},
		// Latency with the long right tail real services have, drawn request by request
		// (lognormal, σ 0.6, stable P99 202 ms) and counted in Envoy's default buckets
		// (…100, 250, 500 ms…), where both thresholds round up to 500 ms: a healthy
		// canary completes; a P99 +30 % is paused by the test read inside the 100-250 ms
		// bucket (about 2 % of its requests slower than ×1.1 the stable P99), and cannot
		// be rolled back (0.03 % slower than 500 ms).
		{name: "lognormal-healthy", envoyBuckets: true, v1: lognormal(base, 202*time.Millisecond), v2: lognormal(canary, 202*time.Millisecond),
			tweak: longStage, want: completesUnpaused("healthy lognormal canary")},
		{name: "lognormal-latency30", envoyBuckets: true, v1: lognormal(base, 202*time.Millisecond), v2: lognormal(canary, 263*time.Millisecond),
			tweak: func(s *controller.Spec) { s.Stages[0].MinWindow = controller.Duration(2 * time.Minute) }, // paused in 30-50 s
			want: func(t *testing.T, w *watcher) {
				ro := w.until(t, "pause", func(ro controller.Rollout) bool { return ro.State != controller.StateProgressing })
				if ro.State != controller.StatePaused || !strings.Contains(ro.Reason, "P99 latency more than ×1.1 baseline") ||
					!strings.Contains(ro.Reason, "interpolated inside the bucket [100ms, 250ms]") {
					t.Fatalf("+30%% lognormal P99 in Envoy's buckets: %s (%s), want paused on P99 read inside the bucket", ro.State, ro.Reason)
				}
			}},
		// A quiet service, split as weighted: 6 requests a second, too few for either
		// version to reach minRequests in the analysis window.
		{name: "quiet", v1: with(base, func(f *flow) { f.rps = 4 }), v2: with(canary, func(f *flow) { f.rps = 2 }),
			want: func(t *testing.T, w *watcher) {
				first := w.until(t, "a held check", func(ro controller.Rollout) bool {
					return ro.Progress.LastDecision == controller.DecisionHold
				})
				ro := w.until(t, "four more checks", func(ro controller.Rollout) bool { return ro.Progress.Checks >= first.Progress.Checks+4 })
				if ro.State != controller.StateProgressing || ro.Progress.LastDecision != controller.DecisionHold ||
					!strings.Contains(ro.Progress.LastReason, "< minRequests 100") || ro.Progress.Clean != first.Progress.Clean {
					t.Fatalf("too little traffic: %s, decision %s (%s), %d clean checks after %d; want holding for data",
						ro.State, ro.Progress.LastDecision, ro.Progress.LastReason, ro.Progress.Clean, first.Progress.Clean)
				}
			}},
		{name: "query", v1: base, v2: canary,
			tweak: func(s *controller.Spec) {
				s.CustomChecks = []controller.Check{{Name: "canary-rate",
					Query:  `sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="{{.Cluster}}"}[{{.Window}}]))`,
					Max:    ptr(10.0),
					OnFail: controller.OnFailRollback}}
			},
			bySource: map[string]func(t *testing.T, w *watcher){
				"prometheus": func(t *testing.T, w *watcher) {
					ro := w.until(t, "rollback", terminal)
					if ro.State != controller.StateRolledBack || !strings.Contains(ro.Reason, `check "canary-rate" failed: value`) ||
						!strings.Contains(ro.Reason, "above max 10") {
						t.Fatalf("query check above max: %s (%s), want rolled back by the check", ro.State, ro.Reason)
					}
				},
				"scrape": func(t *testing.T, w *watcher) {
					ro := w.until(t, "pause", func(ro controller.Rollout) bool { return ro.State != controller.StateProgressing })
					if ro.State != controller.StatePaused || !strings.Contains(ro.Reason, "query checks need a Prometheus server") {
						t.Fatalf("query check without Prometheus: %s (%s), want paused, never passed", ro.State, ro.Reason)
					}
				},
			}},
		{name: "outage", v1: base, v2: canary, interrupt: true,
			tweak: func(s *controller.Spec) { s.Stages[0].MinWindow = controller.Duration(time.Hour) },
			want: func(t *testing.T, w *watcher) {
				ro := w.until(t, "a hold on the failing source", func(ro controller.Rollout) bool {
					return ro.Progress.SourceFailures > 0 || ro.State != controller.StateProgressing
				})
				if ro.State != controller.StateProgressing || ro.Progress.LastDecision != controller.DecisionHold {
					t.Fatalf("source gone: %s, decision %s (%s); want a hold first", ro.State, ro.Progress.LastDecision, ro.Progress.LastReason)
				}
				ro = w.until(t, "pause", func(ro controller.Rollout) bool { return ro.State != controller.StateProgressing })
				if ro.State != controller.StatePaused || !strings.Contains(ro.Reason, "metrics source failing on 3 consecutive checks") {
					t.Fatalf("source gone: %s (%s), want paused on the source-failure limit", ro.State, ro.Reason)
				}
			}},
	}
}

func terminal(ro controller.Rollout) bool { return ro.State.Terminal() }

// lognormal is f with latencies drawn from the lognormal of σ 0.6 and the given P99.
func lognormal(f flow, p99 time.Duration) flow {
	f.p99, f.sigma = p99, 0.6
	return f
}

// completesUnpaused wants the stage completed without a pause or a rollback.
func completesUnpaused(what string) func(t *testing.T, w *watcher) {
	return func(t *testing.T, w *watcher) {
		ro := w.until(t, "Go", func(ro controller.Rollout) bool { return ro.State != controller.StateProgressing })
		if ro.State != controller.StateMonitoring {
			t.Fatalf("%s: %s (%s), want the stage completed", what, ro.State, ro.Reason)
		}
		for _, e := range w.events(t) {
			if e.Kind == controller.EventPaused || e.Kind == controller.EventRolledBack {
				t.Errorf("%s: %s event (%s), want none", what, e.Kind, e.Reason)
			}
		}
	}
}

// longStage lengthens the stage to 15 s.
func longStage(s *controller.Spec) { s.Stages[0].MinWindow = controller.Duration(15 * time.Second) }

// watcher evaluates the runner on the wall clock and reads the rollout.
type watcher struct {
	run *runner.Runner
	id  string
	// onClean runs once, after the first clean check that judged the analysis window.
	onClean func()
}

// events returns the rollout's events.
func (w *watcher) events(t *testing.T) []controller.Event {
	t.Helper()
	evs, err := w.run.RolloutEvents(w.id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// until evaluates every 200 ms until cond holds for the rollout, failing after a
// deadline.
func (w *watcher) until(t *testing.T, what string, cond func(controller.Rollout) bool) controller.Rollout {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		w.run.Evaluate(context.Background())
		ro, err := w.run.Rollout(w.id)
		if err != nil {
			t.Fatal(err)
		}
		// The check window's numbers attached as Recent: the check judged the analysis
		// window too (the loop gathers none shorter than its MinWindow).
		if last := ro.Progress.Last; w.onClean != nil && last != nil && last.Verdict == controller.VerdictClean && last.Recent != nil {
			w.onClean()
			w.onClean = nil
		}
		if cond(ro) {
			t.Logf("%s: %s (%s), decision %s (%s); last %s", what, ro.State, ro.Reason, ro.Progress.LastDecision, ro.Progress.LastReason, numbers(ro.Progress.Last))
			return ro
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reached: %s, decision %s (%s), reason %q", what, ro.State, ro.Progress.LastDecision, ro.Progress.LastReason, ro.Reason)
		}
		<-tick.C
	}
}

func numbers(n *controller.Numbers) string {
	if n == nil {
		return "none"
	}
	return fmt.Sprintf("canary %d/%d P99 %s vs stable %d/%d P99 %s over %s → %s",
		n.CanaryErrors, n.CanaryRequests, n.CanaryP99, n.StableErrors, n.StableRequests, n.StableP99, n.Window, n.Verdict)
}

func TestVerdictsFromRealSources(t *testing.T) {
	promtest.Require(t)
	exp := envoytest.StartWithBounds(t, metrics.LatencyBucketsMS())
	envoyExp := envoytest.Start(t) // Envoy's default buckets
	shared := promtest.StartServer(t, []string{exp.Addr(), envoyExp.Addr()}, promtest.Options{MetricsPath: envoytest.Path})
	for i, tc := range verdictCases() {
		for _, source := range []string{"prometheus", "scrape"} {
			t.Run(tc.name+"/"+source, func(t *testing.T) {
				t.Parallel()
				name := fmt.Sprintf("%s-%s", tc.name, source)
				ex, promURL := exp, shared.URL
				if tc.envoyBuckets {
					ex = envoyExp
				}
				var stopSource func()
				if tc.interrupt {
					// The outage takes a source away: an exporter and a server of its own.
					ex = envoytest.StartWithBounds(t, metrics.LatencyBucketsMS())
					if source == "prometheus" {
						srv := promtest.StartServer(t, []string{ex.Addr()}, promtest.Options{MetricsPath: envoytest.Path})
						promURL, stopSource = srv.URL, srv.Stop
					} else {
						stopSource = func() { _ = ex.Stop() }
					}
				}
				for v, f := range map[string]flow{"v1": tc.v1, "v2": tc.v2} {
					cluster := metrics.ClusterName(name, v)
					if f.sigma > 0 {
						h := fnv.New64a()
						h.Write([]byte(cluster))
						t.Cleanup(ex.TrafficSampled(cluster, f.rps, f.errFrac, envoytest.WithP99(f.p99, f.sigma), h.Sum64()))
						continue
					}
					t.Cleanup(ex.Traffic(cluster, f.rps, f.errFrac, f.p99))
				}
				svc := verdictService(t, name, 11000+i, ex.Addr())
				log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
				var src metrics.Source
				if source == "prometheus" {
					p, err := metrics.NewPrometheus(log, metrics.PrometheusConfig{Address: promURL})
					if err != nil {
						t.Fatal(err)
					}
					src = p
				} else {
					s := metrics.NewScrape(log, metrics.ScrapeConfig{Interval: time.Second})
					s.Update([]catalog.Service{svc})
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan struct{})
					go func() { defer close(done); _ = s.Run(ctx) }()
					t.Cleanup(func() { cancel(); <-done })
					src = s
				}
				waitData(t, src, svc)

				st, err := store.Open(t.TempDir(), store.Options{LockTimeout: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = st.Close() })
				run, err := runner.New(context.Background(), &catalog.Catalog{Services: []catalog.Service{svc}}, runner.Options{
					Log: log, Store: st, XDS: xds.NewServer(log, xds.Options{}), Metrics: src, MinWindow: 3 * time.Second,
				})
				if err != nil {
					t.Fatal(err)
				}
				spec := verdictSpec(name)
				if tc.tweak != nil {
					tc.tweak(&spec)
				}
				ro, err := run.Start(context.Background(), spec, "test")
				if err != nil {
					t.Fatal(err)
				}
				w := &watcher{run: run, id: ro.ID}
				if stopSource != nil {
					w.onClean = stopSource
				}
				if f := tc.bySource[source]; f != nil {
					f(t, w)
				} else {
					tc.want(t, w)
				}
			})
		}
	}
}

// verdictService is a catalog service whose versions' stats come from the exporter at
// target, as Envoy's admin endpoint would serve them.
func verdictService(t *testing.T, name string, port int, target string) catalog.Service {
	t.Helper()
	host, p, err := net.SplitHostPort(target)
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := strconv.Atoi(p)
	svc := catalog.Service{
		Name: name, Port: uint32(port), Stable: "v1", ProxiesOptional: true,
		Versions: []catalog.Version{
			{Name: "v1", Endpoints: []catalog.Endpoint{{Host: "127.0.0.1", Port: 1}}},
			{Name: "v2", Endpoints: []catalog.Endpoint{{Host: "127.0.0.1", Port: 2}}},
		},
		Metrics: catalog.MetricQueries{
			Convention: catalog.ConventionEnvoy,
			ScrapePath: envoytest.Path,
			Targets:    []catalog.Endpoint{{Host: host, Port: uint32(tp)}},
		},
	}
	return svc
}

// verdictSpec is one stage of five seconds at a third, the share the canary's flow has
// of the traffic (so the sample-ratio guard finds the split as weighted), checked every
// second, with the guide's thresholds except a 3 s sustain for the marginal no-go (error
// rate and P99), so that one can be decided within the stage.
func verdictSpec(service string) controller.Spec {
	return controller.Spec{
		Service: service,
		Release: controller.Release{Type: controller.Minor, Name: "2.0.0", Date: "2026-03-02",
			Summary: "new pricing engine", RollbackPlan: "route 100% back to v1"},
		Canary:             controller.Canary{Version: "v2"},
		Stages:             []controller.StageSpec{{Percent: 33.33, MinWindow: controller.Duration(5 * time.Second)}},
		CheckInterval:      controller.Duration(time.Second),
		AckTimeout:         controller.Duration(30 * time.Second),
		InconclusiveLimit:  controller.Duration(5 * time.Minute),
		SourceFailureLimit: 3,
		Thresholds:         controller.Thresholds{RollbackSustain: controller.Duration(3 * time.Second)},
		Waivers:            []controller.Waiver{{Item: controller.ItemSmokeTests, Reason: "metrics only", By: "test"}},
		Monitoring:         []controller.Phase{{Name: "Immediate", Until: controller.Duration(time.Hour)}},
	}
}

// waitData waits until the source answers for both versions over a 3 s window, so the
// rollout starts on a source that has data.
func waitData(t *testing.T, src metrics.Source, svc catalog.Service) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ok := true
		for _, v := range []string{"v1", "v2"} {
			st, err := src.VersionStats(context.Background(), svc, v, 3*time.Second, time.Now())
			if err != nil || st.Requests == 0 {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no data for %s from the source", svc.Name)
		}
		<-tick.C
	}
}

func ptr[T any](v T) *T { return &v }
