package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

type report struct {
	Started                        time.Time
	Took                           time.Duration
	Machine                        string
	Small, Large, Updates, Proxies int
	Services                       int
	Fanout                         []*fanoutResult
	Rollback                       []*rollbackResult
	Capacity                       *capacityResult
	Page                           *pageResult
	Replicas                       *replicasResult
	DNS                            *dnsResult
	Errors                         []string
}

func (r *report) addFanout(f *fanoutResult) {
	if f != nil {
		r.Fanout = append(r.Fanout, f)
	}
}

func (r *report) fanout(kind string, n int) *fanoutResult {
	for _, f := range r.Fanout {
		if f.Kind == kind && f.N == n {
			return f
		}
	}
	return nil
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.3f ms", float64(d)/1e6)
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

type row struct {
	name, target string
	get          func(*fanoutResult) (float64, string)
}

func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# octoroll benchmark")
	w("")
	w("Run %s on %s; took %s. `make bench` (go run ./cmd/octoroll-bench).", r.Started.UTC().Format(time.RFC3339), r.Machine, r.Took.Round(time.Second))
	w("")
	w("## 1-2. Weight-change fan-out, octoroll vs plain go-control-plane v0.14 (same run)")
	w("")
	w("Each client: own gRPC connection, one ADS stream, subscribes as gRPC does (LDS api_listener → RDS → CDS → EDS), ACKs every response; load generator in its own process. %d weight changes per run; latencies are from the decision (the instant Update / the SetSnapshot loop starts) to each client's receipt of the new RouteConfiguration and to its ACK being sent, over all clients × changes. \"plain\" is `cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)` with `SetSnapshot` per node id, as go-control-plane's example server does, served by `serverv3.NewServer` with gRPC's default buffers and window plus the keepalive settings octoroll uses. octoroll runs its own `xds.Server.Serve`, which serves ADS with octoroll's own stream handler (requests handled on gRPC's stream goroutine, responses in the cache's order) and sets an 8 KiB read buffer, a shared 16 KiB write buffer and a fixed 1 MiB receive window per connection.", r.Updates)
	w("")
	dd := func(f func(*fanoutResult) time.Duration) func(*fanoutResult) (float64, string) {
		return func(x *fanoutResult) (float64, string) { d := f(x); return float64(d), ms(d) }
	}
	rows := []row{
		{"route received p50", "10k ≤ 150 ms", dd(func(x *fanoutResult) time.Duration { return x.Recv.P50 })},
		{"route received p99", "10k ≤ 300 ms, 1k ≤ 50 ms", dd(func(x *fanoutResult) time.Duration { return x.Recv.P99 })},
		{"route received max", "", dd(func(x *fanoutResult) time.Duration { return x.Recv.Max })},
		{"ACK sent p50", "", dd(func(x *fanoutResult) time.Duration { return x.Ack.P50 })},
		{"ACK sent p99", "", dd(func(x *fanoutResult) time.Duration { return x.Ack.P99 })},
		{"ACK sent max", "", dd(func(x *fanoutResult) time.Duration { return x.Ack.Max })},
		{"server saw every ACK (WaitAcked, 1 extra change)", "", dd(func(x *fanoutResult) time.Duration { return x.AllAcked })},
		{"server CPU per client per update", "≤ 40 µs", func(x *fanoutResult) (float64, string) {
			return float64(x.CPUPerUpdate), us(x.CPUPerUpdate)
		}},
		{"RSS per connected client", "≤ 32 KiB", func(x *fanoutResult) (float64, string) { return x.RSSPerClient, kib(x.RSSPerClient) }},
		{"longest hold of a shared lock", "≤ 5 ms at 10k", dd(func(x *fanoutResult) time.Duration { return x.LockHold })},
		{"all clients connected with full config", "", dd(func(x *fanoutResult) time.Duration { return x.Connect })},
	}
	w("| figure | target | octoroll %d | plain %d | ratio | octoroll %d | plain %d | ratio |", r.Small, r.Small, r.Large, r.Large)
	w("|---|---|---:|---:|---:|---:|---:|---:|")
	for _, rw := range rows {
		cells := []string{rw.name, rw.target}
		for _, n := range []int{r.Small, r.Large} {
			o, p := r.fanout("octoroll", n), r.fanout("plain", n)
			var ov, pv float64
			os, ps := "–", "–"
			if o != nil {
				ov, os = rw.get(o)
			}
			if p != nil {
				pv, ps = rw.get(p)
				if rw.name == "server saw every ACK (WaitAcked, 1 extra change)" {
					ps, pv = "n/a (no tracker)", 0
				}
			}
			cells = append(cells, os, ps, ratio(ov, pv))
		}
		w("| %s |", strings.Join(cells, " | "))
	}
	w("")
	for _, f := range r.Fanout {
		w("- %s %d: lock holds: %s.", f.Kind, f.N, f.LockDetail)
	}
	w("")
	w("## 3. Reconnect storm (%d clients)", r.Large)
	w("")
	w("The server is stopped (streams end, graceful stop), a new one starts on the same port with the same resources, and every client redials (gRPC default reconnect backoff: 1 s base, ±20 %% jitter) and resubscribes. Time until every client has LDS, RDS, CDS and EDS on its new stream.")
	w("")
	w("| figure | target | octoroll | plain | ratio |")
	w("|---|---|---:|---:|---:|")
	o, p := r.fanout("octoroll", r.Large), r.fanout("plain", r.Large)
	storm := func(name, target string, f func(*stormResult) time.Duration) {
		var ov, pv time.Duration
		os, ps := "–", "–"
		if o != nil && o.Storm != nil {
			ov = f(o.Storm)
			os = ms(ov)
		}
		if p != nil && p.Storm != nil {
			pv = f(p.Storm)
			ps = ms(pv)
		}
		w("| %s | %s | %s | %s | %s |", name, target, os, ps, ratio(float64(ov), float64(pv)))
	}
	storm("new server listening → client has full config, p50", "", func(s *stormResult) time.Duration { return s.FromStart.P50 })
	storm("… p99", "", func(s *stormResult) time.Duration { return s.FromStart.P99 })
	storm("… every client (max)", "≤ 3 s", func(s *stormResult) time.Duration { return s.FromStart.Max })
	storm("old server stop begins → every client has full config", "", func(s *stormResult) time.Duration { return s.FromStop })
	w("")
	w("## 4. Fault to rollback (real runner, store, xds server, prober; %d clients connected)", r.Proxies)
	w("")
	w("| path | settings | target | fault → decision | fault → every proxy ACKed 100 %% stable | decision → all ACKed | decided by |")
	w("|---|---|---|---:|---:|---:|---|")
	for _, x := range r.Rollback {
		if x.Skipped != "" {
			w("| %s | %s | %s | %s | | | |", x.Path, x.Settings, x.Target, x.Skipped)
			continue
		}
		reason := x.Reason
		if x.Paused != "" {
			reason = x.Paused + "; then rolled back: " + reason
		}
		w("| %s | %s | %s | %s | %s | %s | %s |", x.Path, x.Settings, x.Target, ms(x.Decision), ms(x.AllAcked), ms(x.AllAcked-x.Decision), reason)
	}
	w("")
	w("Gross vs marginal (controller/judge.go): a breach is gross when the one-sided lower confidence bound of canary − stable error rate, computed at GrossConfidence (default 0.999, z ≈ 3.09, Newcombe hybrid score over Wilson bounds, counts divided by the measured error dispersion), is beyond GrossFactor × RollbackErrorRatePP (default 5 × 1 pp = 5 pp) on the check window: it rolls back when the next check confirms it, so the Prometheus path takes two check intervals after the fault is visible. A marginal breach (above 1 pp) rolls back when measured over a whole sustain window (RollbackSustain, 5 min). Health: every canary endpoint down rolls back on the check that sees it; a prober state change forces a check at once, without waiting for the check interval.")
	w("")
	if c := r.Capacity; c != nil {
		w("## 5. Controller capacity (%d services, each with an active rollout, one runner)", c.Services)
		w("")
		w("Real runner, real bbolt store in a temp dir, real xds server (no proxies); a metrics source answering at once with clean numbers; a clock advanced by the check interval (%s) before each evaluation of every rollout. %d rollouts are created by the engine and persisted, then resumed by runner.New (starting them one by one is quadratic, see below); %d go through Runner.Start.", c.Interval, c.Services-startSample, startSample)
		w("")
		w("| figure | value |")
		w("|---|---:|")
		w("| CPU per check interval (all %d rollouts evaluated, mean of %d) | %s |", c.Services, c.Rounds, ms(c.CPUPerInterval))
		w("| wall time per check interval | %s |", ms(c.WallPerInterval))
		w("| store transitions per second (checks persisted) | %.0f |", c.TransitionsPerSec)
		w("| Go heap in use with %d active rollouts | %.1f MiB |", c.Services, float64(c.HeapInuse)/(1<<20))
		w("| RSS | %.1f MiB |", float64(c.RSS)/(1<<20))
		w("| one Runner.Start with %d other rollouts active (persists, then publishes the services whose desired state changed; mean of %d) | %s |", c.Services-1, startSample, ms(c.StartOne))
		w("")
	}
	if p := r.Page; p != nil {
		w("## 6. Status page and services API (%d services, %d active rollouts, %d clients)", p.Services, p.Active, p.Clients)
		w("")
		w("Real runner and bbolt store (every service has a rollout: %d active, checked 3 times; the others completed, %d events stored, setup %s), admin server over HTTP on loopback; %d concurrent clients send %d GETs each after one warm-up request.", p.Active, p.Events, p.Setup.Round(time.Millisecond), p.Clients, 10)
		if p.LoadAvg != "" {
			w("")
			w("Load average when the run ended (1, 5, 15 min): %s; the figures include the waits for the CPU under it.", p.LoadAvg)
		}
		w("")
		w("| path | p50 | p99 | max | response size |")
		w("|---|---:|---:|---:|---:|")
		for _, x := range p.Rows {
			w("| GET %s | %s | %s | %s | %s |", x.Path, ms(x.P50), ms(x.P99), ms(x.Max), kib(float64(x.Bytes)))
		}
		w("")
	}
	if x := r.Replicas; x != nil {
		w("## 6. Several replicas (%d real octoroll processes on one real etcd, %d proxies spread over them)", x.Replicas, x.Proxies)
		w("")
		w("Simulated clients as in 1-2, an equal share connected to each replica. A decision is a rollout started or aborted through the leader's admin API; it is measured from the request until the leader's convergence (which joins every replica's ACK record from etcd) shows every proxy of every replica ACKed the new route. Failover: kill -9 of the leader until another replica reports octoroll_leader 1 (lease TTL %s); the killed replica is started again between runs.", x.TTL)
		w("")
		w("| figure | value |")
		w("|---|---:|")
		w("| decision → every proxy on all replicas ACKed, p50 / p99 / max (%d decisions) | %s / %s / %s |", x.AllAcked.N, ms(x.AllAcked.P50), ms(x.AllAcked.P99), ms(x.AllAcked.Max))
		var fo []string
		for _, d := range x.Failover {
			fo = append(fo, ms(d))
		}
		w("| leader failover, kill -9 → new leader (each run) | %s |", strings.Join(fo, ", "))
		w("")
	}
	if x := r.DNS; x != nil {
		w("## 7. DNS discovery (%d proxies)", x.Proxies)
		w("")
		w("The stable version's endpoints follow a DNS name served by an in-process DNS server on the DNS protocol (publish/dnstest, UDP on loopback); its A records change %d times (one address, two, one, ...), TTL %s (the TTL floor lowered to it), runner tick %s. Simulated clients as in 1-2 subscribe to LDS, RDS, CDS and EDS and ACK every response.", x.Changes, x.TTL, x.Tick)
		w("")
		w("| figure | p50 | p99 | max |")
		w("|---|---:|---:|---:|")
		w("| record changed → new EDS ACKed by every proxy (TTL and tick included) | %s | %s | %s |", ms(x.EndToEnd.P50), ms(x.EndToEnd.P99), ms(x.EndToEnd.Max))
		w("| new EDS published → ACKed by every proxy | %s | %s | %s |", ms(x.Fanout.P50), ms(x.Fanout.P99), ms(x.Fanout.Max))
		w("")
	}
	w("## Targets")
	w("")
	w("| target | measured | met |")
	w("|---|---|---|")
	for _, t := range r.targets() {
		w("| %s | %s | %s |", t[0], t[1], t[2])
	}
	if len(r.Errors) > 0 {
		w("")
		w("## Errors")
		for _, e := range r.Errors {
			w("- %s", e)
		}
	}
	return b.String()
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (r *report) targets() [][3]string {
	var out [][3]string
	if o := r.fanout("octoroll", r.Large); o != nil {
		out = append(out,
			[3]string{fmt.Sprintf("%d clients p50 ≤ 150 ms", r.Large), ms(o.Recv.P50), yes(o.Recv.P50 <= 150*time.Millisecond)},
			[3]string{fmt.Sprintf("%d clients p99 ≤ 300 ms", r.Large), ms(o.Recv.P99), yes(o.Recv.P99 <= 300*time.Millisecond)},
			[3]string{"≤ 40 µs server CPU per client per update (10k)", us(o.CPUPerUpdate), yes(o.CPUPerUpdate <= 40*time.Microsecond)},
			[3]string{"≤ 32 KiB per connected client (10k)", kib(o.RSSPerClient), yes(o.RSSPerClient <= 32*1024)},
			[3]string{"no shared lock held > 5 ms at 10k watchers", ms(o.LockHold) + " (" + o.LockDetail + ")", yes(o.LockHold <= 5*time.Millisecond)},
		)
		if o.Storm != nil {
			out = append(out, [3]string{"reconnect storm ≤ 3 s", ms(o.Storm.FromStart.Max), yes(o.Storm.FromStart.Max <= 3*time.Second)})
		}
	}
	if o := r.fanout("octoroll", r.Small); o != nil {
		out = append(out, [3]string{fmt.Sprintf("%d clients p99 ≤ 50 ms", r.Small), ms(o.Recv.P99), yes(o.Recv.P99 <= 50*time.Millisecond)})
	}
	if p := r.Page; p != nil {
		for _, x := range p.Rows {
			out = append(out, [3]string{fmt.Sprintf("GET %s p99 ≤ 200 ms (%d services, %d active, %d clients)", x.Path, p.Services, p.Active, p.Clients), ms(x.P99), yes(x.P99 <= 200*time.Millisecond)})
		}
	}
	if x := r.Replicas; x != nil && len(x.Failover) > 0 {
		worst := slices.Max(x.Failover)
		out = append(out, [3]string{fmt.Sprintf("a follower leads within the lease TTL + 2 s (%s)", x.TTL+2*time.Second), ms(worst), yes(worst <= x.TTL+2*time.Second)})
	}
	for _, x := range r.Rollback {
		if x.Target == "" || x.Skipped != "" {
			continue
		}
		out = append(out, [3]string{x.Path + " (" + x.Settings + "): " + x.Target, ms(x.AllAcked), yes(x.AllAcked > 0 && x.AllAcked <= x.TargetD)})
	}
	return out
}
