package metrics_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/metrics"
)

// clock is an injected clock the test advances by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

func endpoint(t *testing.T, addr string) catalog.Endpoint {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return catalog.Endpoint{Host: host, Port: uint32(p)}
}

func checkout(v2 ...catalog.Endpoint) catalog.Service {
	return catalog.Service{
		Name: "checkout", Metrics: catalog.MetricQueries{Convention: catalog.ConventionApp},
		Versions: []catalog.Version{{Name: "v1"}, {Name: "v2", Metrics: v2}},
	}
}

func TestScrapeWindowsResetsAndEndpoints(t *testing.T) {
	a, b := newApp(t), newApp(t)
	for _, x := range []*app{a, b} {
		x.touch("checkout", "v2", "200", "500")
		// Another version on the same exposition must not count.
		x.serve("checkout", "v1", "500", 7, time.Second)
	}
	clk := &clock{now: time.Unix(1000, 0)}
	s := metrics.NewScrape(zaptest.NewLogger(t), metrics.ScrapeConfig{Interval: 5 * time.Second, Now: clk.Now})
	svc := checkout(endpoint(t, a.addr), endpoint(t, b.addr))
	s.Update([]catalog.Service{svc})
	ctx := t.Context()
	stats := func(window time.Duration) (metrics.Stats, error) {
		return s.VersionStats(ctx, svc, "v2", window, clk.Now())
	}

	s.ScrapeOnce(ctx) // t=1000: zeros
	if _, err := stats(time.Minute); !errors.Is(err, metrics.ErrNoData) {
		t.Fatalf("one sample: err = %v, want ErrNoData", err)
	}

	a.serve("checkout", "v2", "200", 550, 20*time.Millisecond)
	a.serve("checkout", "v2", "500", 50, 300*time.Millisecond)
	b.serve("checkout", "v2", "200", 370, 20*time.Millisecond)
	b.serve("checkout", "v2", "500", 30, 20*time.Millisecond)
	clk.Add(5 * time.Second)
	s.ScrapeOnce(ctx) // t=1005
	got, err := stats(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 1000 || got.Errors != 80 {
		t.Errorf("two endpoints: %+v, want 1000 requests, 80 errors", got)
	}
	// 950 at 20ms, 50 at 300ms: rank 990 in (0.25, 0.5].
	if got.P99 <= 250*time.Millisecond || got.P99 > 500*time.Millisecond {
		t.Errorf("P99 = %v, want in (250ms, 500ms]", got.P99)
	}
	if _, err := stats(4 * time.Second); !errors.Is(err, metrics.ErrNoData) {
		t.Errorf("window holding one sample: err = %v, want ErrNoData", err)
	}

	// b restarts: its counters start from zero and it serves 100 more (10 errors).
	b.reset()
	b.serve("checkout", "v2", "200", 90, 20*time.Millisecond)
	b.serve("checkout", "v2", "500", 10, 20*time.Millisecond)
	clk.Add(5 * time.Second)
	s.ScrapeOnce(ctx) // t=1010
	if got, err = stats(10 * time.Second); err != nil || got.Requests != 1100 || got.Errors != 90 {
		t.Errorf("after reset over 10s: %+v, %v; want 1100 requests, 90 errors", got, err)
	}
	if got, err = stats(5 * time.Second); err != nil || got.Requests != 100 || got.Errors != 10 {
		t.Errorf("after reset over 5s: %+v, %v; want 100 requests, 10 errors", got, err)
	}
	// Only 20ms requests since the restart window: P99 in (0.01, 0.025].
	if got.P99 <= 10*time.Millisecond || got.P99 > 25*time.Millisecond {
		t.Errorf("P99 after reset = %v, want in (10ms, 25ms]", got.P99)
	}

	// a goes away; b keeps counting; a's failure shows in Targets and makes the
	// version's figures an error naming a, not b's figures alone.
	a.srv.Close()
	b.serve("checkout", "v2", "200", 40, 20*time.Millisecond)
	clk.Add(5 * time.Second)
	s.ScrapeOnce(ctx) // t=1015
	if got, err = stats(5 * time.Second); err == nil || errors.Is(err, metrics.ErrNoData) || !strings.Contains(err.Error(), a.addr) {
		t.Errorf("with a down: %+v, %v; want an error naming %s", got, err, a.addr)
	}
	targets := s.Targets()
	if len(targets) != 2 {
		t.Fatalf("targets = %+v, want 2", targets)
	}
	for _, tg := range targets {
		down := tg.Endpoint == a.addr
		if (tg.LastError != "") != down || !tg.LastScrape.Equal(clk.Now()) || !strings.HasSuffix(tg.URL, "/metrics") {
			t.Errorf("target %+v: want error %v at %v", tg, down, clk.Now())
		}
	}

	// A new endpoint c with history counts only from its first sample on.
	c := newApp(t)
	c.serve("checkout", "v2", "200", 5000, 20*time.Millisecond)
	svc = checkout(endpoint(t, b.addr), endpoint(t, c.addr))
	s.Update([]catalog.Service{svc})
	clk.Add(5 * time.Second)
	s.ScrapeOnce(ctx) // t=1020
	c.serve("checkout", "v2", "200", 7, 20*time.Millisecond)
	clk.Add(5 * time.Second)
	s.ScrapeOnce(ctx) // t=1025
	if got, err = stats(10 * time.Second); err != nil || got.Requests != 7 {
		t.Errorf("new endpoint: %+v, %v; want 7 requests", got, err)
	}
	if n := len(s.Targets()); n != 2 {
		t.Errorf("targets after update = %d, want 2 (a removed)", n)
	}
	// The whole history is still there: 1000 + 100 + 40 + 7.
	if got, err = stats(time.Hour); err != nil || got.Requests != 1147 {
		t.Errorf("whole history: %+v, %v; want 1147 requests", got, err)
	}

	// Removing the version drops it.
	s.Update([]catalog.Service{checkout()})
	if _, err := stats(time.Hour); !errors.Is(err, metrics.ErrNoData) {
		t.Errorf("removed version: err = %v, want ErrNoData", err)
	}
}

func TestScrapeBadEndpoints(t *testing.T) {
	bodies := map[string]func(w http.ResponseWriter){
		"500":       func(w http.ResponseWriter) { http.Error(w, "boom", http.StatusInternalServerError) },
		"malformed": func(w http.ResponseWriter) { _, _ = w.Write([]byte("requests_total{service=\"checkout\" 12\n")) },
	}
	for name, write := range bodies {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { write(w) }))
			t.Cleanup(srv.Close)
			clk := &clock{now: time.Unix(1000, 0)}
			s := metrics.NewScrape(zaptest.NewLogger(t), metrics.ScrapeConfig{Now: clk.Now})
			svc := checkout(endpoint(t, strings.TrimPrefix(srv.URL, "http://")))
			s.Update([]catalog.Service{svc})
			for range 3 {
				s.ScrapeOnce(t.Context())
				clk.Add(5 * time.Second)
			}
			_, err := s.VersionStats(t.Context(), svc, "v2", time.Hour, clk.Now())
			if err == nil || errors.Is(err, metrics.ErrNoData) || !strings.Contains(err.Error(), strings.TrimPrefix(srv.URL, "http://")) {
				t.Errorf("err = %v, want a failure naming the target", err)
			}
			tg := s.Targets()
			if len(tg) != 1 || tg[0].LastError == "" {
				t.Errorf("targets = %+v, want one with an error", tg)
			}
		})
	}
}

func TestScrapeNotScrapedAndRetention(t *testing.T) {
	a := newApp(t)
	a.touch("checkout", "v2", "200")
	clk := &clock{now: time.Unix(1000, 0)}
	// Retention 10s at a 5s interval keeps 4 samples.
	s := metrics.NewScrape(zaptest.NewLogger(t), metrics.ScrapeConfig{Interval: 5 * time.Second, Retention: 10 * time.Second, Now: clk.Now})
	svc := checkout(endpoint(t, a.addr))
	s.Update([]catalog.Service{svc})
	if _, err := s.VersionStats(t.Context(), svc, "v1", time.Minute, clk.Now()); !errors.Is(err, metrics.ErrNoData) {
		t.Errorf("version without metrics endpoints: err = %v, want ErrNoData", err)
	}
	for range 10 {
		a.serve("checkout", "v2", "200", 1, time.Millisecond)
		clk.Add(5 * time.Second)
		s.ScrapeOnce(t.Context())
	}
	got, err := s.VersionStats(t.Context(), svc, "v2", time.Hour, clk.Now())
	if err != nil || got.Requests != 3 {
		t.Errorf("bounded ring: %+v, %v; want 3 requests (4 samples kept)", got, err)
	}
	if _, err := s.VersionStats(t.Context(), svc, "v2", 0, clk.Now()); err == nil || errors.Is(err, metrics.ErrNoData) {
		t.Errorf("zero window: err = %v, want a failure", err)
	}
}

func TestScrapeRun(t *testing.T) {
	a := newApp(t)
	a.touch("checkout", "v2", "200")
	s := metrics.NewScrape(zaptest.NewLogger(t), metrics.ScrapeConfig{Interval: 20 * time.Millisecond})
	svc := checkout(endpoint(t, a.addr))
	s.Update([]catalog.Service{svc})
	a.serve("checkout", "v2", "200", 3, time.Millisecond) // before the first sample: not counted
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	eventually(t, 10*time.Second, "Run scrapes", func() error {
		// Concurrent readers while Run writes (checked by -race).
		_ = s.Targets()
		st, err := s.VersionStats(ctx, svc, "v2", time.Hour, time.Now())
		if err != nil {
			return err
		}
		if st.Requests != 0 {
			return errors.New("traffic served before the first scrape counted")
		}
		return nil
	})
	a.serve("checkout", "v2", "200", 4, time.Millisecond)
	eventually(t, 10*time.Second, "Run sees new traffic", func() error {
		st, err := s.VersionStats(ctx, svc, "v2", time.Hour, time.Now())
		if err != nil {
			return err
		}
		if st.Requests != 4 {
			return errors.New("want 4 requests, have " + strconv.FormatFloat(st.Requests, 'f', -1, 64))
		}
		return nil
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

// TestScrapeExpositionGuards: series without a version label count for no version (on a
// service-wide target they would make the canary look exactly like stable), an
// exposition over the size limit fails instead of being cut short, and a change of
// convention drops the samples of the old one.
func TestScrapeExpositionGuards(t *testing.T) {
	var mu sync.Mutex
	body := "# TYPE requests_total counter\nrequests_total{service=\"checkout\",code=\"200\"} 1000\n" +
		"requests_total{service=\"checkout\",version=\"v2\",code=\"200\"} 10\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	target := endpoint(t, strings.TrimPrefix(srv.URL, "http://"))
	clk := &clock{now: time.Unix(1000, 0)}
	s := metrics.NewScrape(zaptest.NewLogger(t), metrics.ScrapeConfig{Now: clk.Now, MaxBodyBytes: 4096})
	svc := checkout()
	svc.Metrics.Targets = []catalog.Endpoint{target}
	s.Update([]catalog.Service{svc})
	round := func(add string) {
		mu.Lock()
		body += add
		mu.Unlock()
		s.ScrapeOnce(t.Context())
		clk.Add(5 * time.Second)
	}
	round("")
	round("requests_total{service=\"checkout\",code=\"500\"} 500\n")
	for _, v := range []string{"v1", "v2"} {
		st, err := s.VersionStats(t.Context(), svc, v, time.Minute, clk.Now())
		if err != nil || st.Requests != 0 || st.Errors != 0 {
			t.Errorf("%s: %+v, %v; want no requests from the series without a version label", v, st, err)
		}
	}

	// A new convention: the app samples are not kept.
	svc.Metrics.Convention = catalog.ConventionEnvoy
	svc.Metrics.ScrapePath = "/metrics" // the same URL as before
	s.Update([]catalog.Service{svc})
	round("")
	if _, err := s.VersionStats(t.Context(), svc, "v2", time.Minute, clk.Now()); !errors.Is(err, metrics.ErrNoData) {
		t.Errorf("after the convention changed: err = %v, want ErrNoData (one sample)", err)
	}

	round("# " + strings.Repeat("x", 5000) + "\n")
	if _, err := s.VersionStats(t.Context(), svc, "v2", time.Minute, clk.Now()); err == nil || !strings.Contains(err.Error(), "larger than 4096 bytes") {
		t.Errorf("oversize exposition: err = %v, want a failure naming the limit", err)
	}
}
