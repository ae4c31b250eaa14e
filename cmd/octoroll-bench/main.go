// Command octoroll-bench measures octoroll's xDS fan-out, reconnect storm, fault to
// rollback and controller capacity, with a plain go-control-plane snapshot-cache server
// measured in the same run for comparison. It prints a Markdown table and writes it to
// bench/results.md. See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"
)

func main() {
	var (
		loadgenMode = flag.Bool("loadgen", false, "run as the load generator (internal)")
		addr        = flag.String("addr", "", "xDS server address (load generator)")
		service     = flag.String("service", benchService, "service the clients subscribe to (load generator)")
		n           = flag.Int("n", 1000, "clients (load generator)")
		out         = flag.String("out", "bench/results.md", "file the table is written to")
		only        = flag.String("only", "", "comma-separated subset: fanout,storm,rollback,prom,defaults,capacity,page,replicas,dns")
		small       = flag.Int("small", 1000, "clients of the small fan-out")
		large       = flag.Int("large", 10000, "clients of the large fan-out and the storm")
		updates     = flag.Int("updates", 10, "weight changes per fan-out run")
		proxies     = flag.Int("proxies", 1000, "clients connected during the fault-to-rollback runs")
		services    = flag.Int("services", 1000, "services of the controller capacity run")
		repProxies  = flag.Int("replica-proxies", 300, "clients spread over the three replicas of the replicas run")
		kinds       = flag.String("kinds", "octoroll,plain", "xDS servers of the fan-out and storm runs")
		cpuprofile  = flag.String("cpuprofile", "", "write a CPU profile of the server process to this file")
		memprofile  = flag.String("memprofile", "", "write a heap profile of the server process to this file at the end")
	)
	flag.Parse()
	if *loadgenMode {
		if err := runLoadgen(*addr, *service, *n, 200); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}
	raiseNoFile()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	want := func(s string) bool {
		if *only == "" {
			return true
		}
		for _, o := range strings.Split(*only, ",") {
			if strings.TrimSpace(o) == s {
				return true
			}
		}
		return false
	}
	began := time.Now()
	rep := &report{
		Started:  began,
		Machine:  fmt.Sprintf("%d CPUs, %s/%s, %s, RLIMIT_NOFILE %d", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), noFileLimit()),
		Small:    *small,
		Large:    *large,
		Updates:  *updates,
		Proxies:  *proxies,
		Services: *services,
	}
	step := func(name string, f func() error) {
		t := time.Now()
		fmt.Fprintf(os.Stderr, "== %s\n", name)
		if err := f(); err != nil {
			fmt.Fprintf(os.Stderr, "   %s failed: %v\n", name, err)
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", name, err))
		}
		fmt.Fprintf(os.Stderr, "   %s took %s\n", name, time.Since(t).Round(time.Millisecond))
	}
	for _, kind := range strings.Split(*kinds, ",") {
		if want("fanout") {
			step(fmt.Sprintf("fan-out %s %d clients", kind, *small), func() error {
				r, err := runFanout(kind, *small, *updates, false)
				rep.addFanout(r)
				return err
			})
		}
		if want("fanout") || want("storm") {
			step(fmt.Sprintf("fan-out and reconnect storm %s %d clients", kind, *large), func() error {
				r, err := runFanout(kind, *large, *updates, want("storm"))
				rep.addFanout(r)
				return err
			})
		}
	}
	if want("rollback") {
		step("fault to rollback, health-check path (1s interval)", func() error {
			r, err := runHealthRollback(*proxies, time.Second, time.Second)
			rep.Rollback = append(rep.Rollback, r)
			return err
		})
	}
	if want("prom") {
		step("fault to rollback, Prometheus path (5s scrape, 15s window)", func() error {
			r, err := runPromRollback(*proxies, 5*time.Second, 5*time.Second, 15*time.Second)
			rep.Rollback = append(rep.Rollback, r)
			return err
		})
	}
	if want("defaults") {
		step("fault to rollback, defaults, health-check path", func() error {
			r, err := runHealthRollback(*proxies, 0, 0)
			rep.Rollback = append(rep.Rollback, r)
			return err
		})
		step("fault to rollback, defaults, Prometheus path", func() error {
			r, err := runPromRollback(*proxies, 5*time.Second, 0, 0)
			rep.Rollback = append(rep.Rollback, r)
			return err
		})
	}
	if want("capacity") {
		step(fmt.Sprintf("controller capacity %d services", *services), func() error {
			r, err := runCapacity(*services, 3)
			rep.Capacity = r
			return err
		})
	}
	if want("page") {
		step(fmt.Sprintf("status page %d services, %d active, 50 clients", *services, *services/5), func() error {
			r, err := runPage(*services, *services/5, 50)
			rep.Page = r
			return err
		})
	}
	if want("replicas") {
		step(fmt.Sprintf("three replicas on etcd, %d proxies", *repProxies), func() error {
			r, err := runReplicas(3, *repProxies, 20, 3, 2*time.Second)
			rep.Replicas = r
			return err
		})
	}
	if want("dns") {
		step(fmt.Sprintf("DNS change to EDS on %d proxies", *proxies), func() error {
			r, err := runDNS(*proxies, 10)
			rep.DNS = r
			return err
		})
	}
	rep.Took = time.Since(began)
	if *memprofile != "" {
		if f, err := os.Create(*memprofile); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
	}
	md := rep.markdown()
	fmt.Println(md)
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
			err = os.WriteFile(*out, []byte(md), 0o644)
			if err != nil {
				fmt.Fprintln(os.Stderr, "write results:", err)
			}
		}
	}
	if len(rep.Errors) > 0 {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
