package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/octoacme/octoroll/admin/api"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
)

type options struct {
	Bin, Catalog, Release1, Release2 string
	Fast, Keep                       bool
	Out                              io.Writer
}

// result is what the demo observed, for its test.
type result struct {
	Release1, Release2 api.RolloutDetail
	Report1, Report2   string
	Traffic            loadStats
	Pids               []int
	Dir                string
}

// OK reports whether release 1 completed, release 2 rolled back and no RPC failed for
// a reason other than the failures v3 injects.
func (r result) OK() bool {
	return r.Release1.State == controller.StateCompleted &&
		r.Release2.State == controller.StateRolledBack &&
		r.Traffic.Other == 0
}

// loadStats mirrors the load generator's /stats.
type loadStats struct {
	OK        map[string]int64 `json:"ok"`
	Injected  map[string]int64 `json:"injected"`
	Other     int64            `json:"other"`
	LastOther []string         `json:"lastOther"`
}

type demo struct {
	o     options
	dir   string
	p     *procs
	admin string // http://127.0.0.1:PORT
	stats string // loadgen stats URL
	grpc  map[string]string
	// http is each version's HTTP port (health, metrics), chosen free at start.
	http    map[string]uint32
	started time.Time
}

func run(ctx context.Context, o options) (res result, err error) {
	dir, err := os.MkdirTemp("", "octoroll-demo-")
	if err != nil {
		return res, err
	}
	d := &demo{o: o, dir: dir, p: &procs{dir: dir}, grpc: map[string]string{}, http: map[string]uint32{}, started: time.Now()}
	res.Dir = dir
	defer func() {
		res.Pids = d.p.stopAll(5 * time.Second)
		if o.Keep || err != nil {
			fmt.Fprintf(o.Out, "\nlogs and state kept in %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if err := d.startAll(ctx); err != nil {
		return res, err
	}
	d.say("status page: %s/   (the same numbers: %s/api/v1/services/demo)\n", d.admin, d.admin)

	d.say("\n== release 1: v1 → v2, minor plan 5%% → 25%% → 50%% → 100%%, then the monitoring window\n")
	res.Release1, res.Report1, err = d.release(ctx, "release 1", o.Release1)
	if err != nil {
		return res, err
	}
	d.say("\n== release 2: v2 → v3; v3 fails about 8%% of its requests\n")
	res.Release2, res.Report2, err = d.release(ctx, "release 2", o.Release2)
	if err != nil {
		return res, err
	}
	if err := d.getJSON(ctx, d.stats, &res.Traffic); err != nil {
		return res, fmt.Errorf("load generator stats: %w", err)
	}
	d.summary(res)
	return res, nil
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.o.Out, format, args...) }

// startAll writes the catalog with free ports and starts the apps, octoroll and the
// load generator, waiting for each to be ready.
func (d *demo) startAll(ctx context.Context) error {
	cat, err := catalog.Load(d.o.Catalog)
	if err != nil {
		return err
	}
	svc := &cat.Services[0]
	ports, err := freePorts(2*len(svc.Versions) + 2)
	if err != nil {
		return err
	}
	xdsAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	adminAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	errorRate := map[string]string{"v3": "0.08"}
	// Every version answers with a lognormal latency, median 50 ms and σ 0.4 (P99 about
	// 127 ms), as a real service's long right tail; the versions differ only in v3's
	// errors, so release 1 is judged on noise alone and must complete.
	for i := range svc.Versions {
		v := &svc.Versions[i]
		g, h := uint32(ports[2+2*i]), uint32(ports[3+2*i])
		v.Endpoints = []catalog.Endpoint{{Host: "127.0.0.1", Port: g}}
		v.Metrics = []catalog.Endpoint{{Host: "127.0.0.1", Port: h}}
		d.grpc[v.Name] = v.Endpoints[0].String()
		d.http[v.Name] = h
		args := []string{"--service", svc.Name, "--version", v.Name,
			"--grpc-addr", v.Endpoints[0].String(), "--http-addr", v.Metrics[0].String(),
			"--latency", "50ms", "--latency-sigma", "0.4", "--log-format", "json"}
		if r, ok := errorRate[v.Name]; ok {
			args = append(args, "--error-rate", r)
		}
		if _, err := d.p.start("app-"+v.Name, filepath.Join(d.o.Bin, "example-app"), args, nil); err != nil {
			return err
		}
	}
	doc, err := yaml.Marshal(cat)
	if err != nil {
		return err
	}
	catPath := filepath.Join(d.dir, "catalog.yaml")
	if err := os.WriteFile(catPath, doc, 0o644); err != nil {
		return err
	}

	args := []string{"serve", "--config", catPath, "--state-dir", filepath.Join(d.dir, "state"),
		"--xds-addr", xdsAddr, "--admin-addr", adminAddr, "--scrape-interval", "500ms",
		"--metrics-window", "6s", "--log-format", "json"}
	if _, err := d.p.start("octoroll", filepath.Join(d.o.Bin, "octoroll"), args, nil); err != nil {
		return err
	}
	d.admin = "http://" + adminAddr
	if err := waitFor(ctx, 30*time.Second, "octoroll admin API", func() error {
		var h api.HealthResponse
		return d.getJSON(ctx, d.admin+"/readyz", &h)
	}); err != nil {
		return fmt.Errorf("%w (see %s)", err, filepath.Join(d.dir, "octoroll.log"))
	}
	d.say("octoroll: xDS on %s, admin on %s, state in %s\n", xdsAddr, adminAddr, filepath.Join(d.dir, "state"))

	_, out, err := d.p.startPiped("loadgen", filepath.Join(d.o.Bin, "loadgen"),
		[]string{"--xds-server", xdsAddr, "--target", "xds:///" + svc.Name, "--rps", "600", "--concurrency", "64", "--node", "demo-loadgen"}, nil)
	if err != nil {
		return err
	}
	first, err := out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("load generator did not start: %w", err)
	}
	var hello struct{ Stats string }
	if err := json.Unmarshal([]byte(first), &hello); err != nil || hello.Stats == "" {
		return fmt.Errorf("load generator said %q", first)
	}
	go io.Copy(io.Discard, out)
	d.stats = hello.Stats
	if err := waitFor(ctx, 30*time.Second, "traffic through xDS", func() error {
		var s loadStats
		if err := d.getJSON(ctx, d.stats, &s); err != nil {
			return err
		}
		if s.OK["v1"] < 100 {
			return fmt.Errorf("%d RPCs answered by v1 so far", s.OK["v1"])
		}
		return nil
	}); err != nil {
		return err
	}
	d.say("load generator: 600 RPC/s to xds:///%s through octoroll's xDS (proxyless gRPC)\n", svc.Name)
	return nil
}

// release starts the rollout in specPath (octoroll runs its smoke tests), shows it
// live until it ends, and returns its final state and report.
func (d *demo) release(ctx context.Context, label, specPath string) (api.RolloutDetail, string, error) {
	var det api.RolloutDetail
	spec, err := d.loadSpec(specPath)
	if err != nil {
		return det, "", err
	}
	body, _ := json.Marshal(spec)
	if err := d.post(ctx, d.admin+"/api/v1/rollouts", body, &det); err != nil {
		return det, "", fmt.Errorf("start %s: %w", label, err)
	}
	d.say("started rollout %s (%s → %s), plan %s\n", det.ID, det.Stable, det.Canary, det.Plan)
	last := ""
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := d.getJSON(ctx, d.admin+"/api/v1/rollouts/"+det.ID, &det); err != nil {
			return det, "", err
		}
		var svc api.ServiceDetail
		if err := d.getJSON(ctx, d.admin+"/api/v1/services/"+spec.Service, &svc); err != nil {
			return det, "", err
		}
		line := viewLine(det, svc)
		if line != last {
			d.say("%s %s\n", elapsed(d.started), line)
			last = line
		}
		if det.State.Terminal() {
			break
		}
		select {
		case <-ctx.Done():
			return det, "", ctx.Err()
		case <-tick.C:
		}
	}
	// The rollback's "every proxy serves known-good" confirmation comes a moment later.
	if det.State == controller.StateRolledBack {
		waitFor(ctx, 10*time.Second, "restore confirmation", func() error {
			var evs api.EventsResponse
			if err := d.getJSON(ctx, d.admin+"/api/v1/events?rollout="+det.ID+"&kind=acked&limit=1000", &evs); err != nil {
				return err
			}
			for _, e := range evs.Events {
				if e.State == controller.StateRolledBack {
					return nil
				}
			}
			return errors.New("not yet")
		})
	}
	report, err := d.get(ctx, d.admin+"/api/v1/rollouts/"+det.ID+"/report", "text/markdown")
	if err != nil {
		return det, "", fmt.Errorf("report of %s: %w", det.ID, err)
	}
	return det, string(report), nil
}

// loadSpec reads a rollout spec; --fast halves its windows.
func (d *demo) loadSpec(path string) (controller.Spec, error) {
	var spec controller.Spec
	f, err := os.Open(path)
	if err != nil {
		return spec, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		return spec, fmt.Errorf("%s: %w", path, err)
	}
	// The apps listen on free ports: the smoke tests' HTTP port is the canary's.
	for i := range spec.SmokeTests {
		if spec.SmokeTests[i].Port != 0 {
			spec.SmokeTests[i].Port = d.http[spec.Canary.Version]
		}
	}
	if d.o.Fast {
		half := func(x *catalog.Duration) { *x = catalog.Duration(max(x.D()/2, time.Second)) }
		for i := range spec.Stages {
			half(&spec.Stages[i].MinWindow)
		}
		for i := range spec.Monitoring {
			half(&spec.Monitoring[i].Until)
		}
		half(&spec.Thresholds.RollbackSustain)
	}
	return spec, nil
}

// viewLine is one line of the live view.
func viewLine(det api.RolloutDetail, svc api.ServiceDetail) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-11s %-10s %s %5.1f%% %s", det.State, stageLabel(det), bar(det.CanaryPercent, 20), det.CanaryPercent, det.Canary)
	if n := svc.LastObservation; n != nil {
		fmt.Fprintf(&b, " | errors %s %.2f%% vs %s %.2f%%", det.Canary, n.CanaryErrorPct, det.Stable, n.StableErrorPct)
		if t := svc.Thresholds; t != nil {
			fmt.Fprintf(&b, " (pause > +%.1fpp, no-go > +%.0fpp)", t.PauseErrorRatePP, t.RollbackErrorRatePP)
		}
		fmt.Fprintf(&b, " | p99 %s vs %s", n.CanaryP99.D().Round(100*time.Microsecond), n.StableP99.D().Round(100*time.Microsecond))
		if t := svc.Thresholds; t != nil {
			fmt.Fprintf(&b, " (≤ ×%.2f)", t.PauseLatencyRatio)
		}
	}
	fmt.Fprintf(&b, " | proxies %d/%d", svc.Proxies.Acked, svc.Proxies.Subscribed)
	switch {
	case det.State == controller.StateCompleted:
		fmt.Fprintf(&b, " | completed: %s is the known-good version", det.Canary)
	case det.State == controller.StatePaused || det.State.Terminal():
		fmt.Fprintf(&b, " | %s: %s", det.State, det.Reason)
	case det.Decision != nil:
		fmt.Fprintf(&b, " | %s: %s", det.Decision.Decision, det.Decision.Reason)
	}
	return b.String()
}

func stageLabel(det api.RolloutDetail) string {
	if det.Stage >= det.Stages {
		return "100%"
	}
	return fmt.Sprintf("stage %d/%d", det.Stage+1, det.Stages)
}

func bar(pct float64, width int) string {
	n := int(pct/100*float64(width) + 0.5)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func elapsed(since time.Time) string {
	d := time.Since(since).Round(time.Second)
	return fmt.Sprintf("[%02d:%02d]", int(d.Minutes()), int(d.Seconds())%60)
}

// summary prints the outcome and both reports' opening sections.
func (d *demo) summary(res result) {
	d.say("\n== release reports\n\n")
	for _, rep := range []string{res.Report1, res.Report2} {
		d.say("%s\n", reportSummary(rep))
	}
	d.say("== traffic seen by the load generator\n")
	for _, v := range []string{"v1", "v2", "v3"} {
		d.say("  %s: %d answered, %d failed by the app itself\n", v, res.Traffic.OK[v], res.Traffic.Injected[v])
	}
	d.say("  failed for any other reason (routing, transport): %d\n", res.Traffic.Other)
	for _, e := range res.Traffic.LastOther {
		d.say("    %s\n", e)
	}
	d.say("\nrelease 1: %s; release 2: %s (%s)\n", res.Release1.State, res.Release2.State, res.Release2.Reason)
}

// reportSummary is a report up to its timeline: the release notes, the outcome and,
// for a rollback, the incident section.
func reportSummary(md string) string {
	var keep []string
	skipping := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "## ") {
			skipping = strings.Contains(strings.ToLower(line), "timeline")
		}
		if !skipping {
			keep = append(keep, line)
		}
	}
	return strings.TrimSpace(strings.Join(keep, "\n")) + "\n"
}

// HTTP helpers for the admin API.

func (d *demo) get(ctx context.Context, url, accept string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	return do(req)
}

func (d *demo) getJSON(ctx context.Context, url string, v any) error {
	b, err := d.get(ctx, url, "application/json")
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (d *demo) post(ctx context.Context, url string, body []byte, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.ActorHeader, "demo")
	b, err := do(req)
	if err != nil || v == nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func do(req *http.Request) ([]byte, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e api.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s (%s)", req.Method, req.URL.Path, e.Error, e.Code)
		}
		return nil, fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return b, nil
}
