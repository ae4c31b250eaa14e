package metrics

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
)

// ScrapeConfig configures the embedded scrape source. Zero values take the defaults.
type ScrapeConfig struct {
	// Interval between scrape rounds. Default 5s.
	Interval time.Duration
	// Timeout of one endpoint's scrape. Default 3s, at most Interval.
	Timeout time.Duration
	// Retention is the longest window VersionStats can answer; it sizes the ring of
	// samples kept per version (Retention/Interval + 2). Default 1h.
	Retention time.Duration
	// MaxBodyBytes caps one exposition body. Default 16 MiB.
	MaxBodyBytes int64
	// Client scrapes the endpoints; nil means a client with Timeout.
	Client *http.Client
	// Now is the clock that timestamps samples. Default time.Now.
	Now func() time.Time
}

func (c ScrapeConfig) withDefaults() ScrapeConfig {
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	c.Timeout = min(c.Timeout, c.Interval)
	if c.Retention <= 0 {
		c.Retention = time.Hour
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 16 << 20
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: c.Timeout}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Scrape is the embedded Source for setups without a Prometheus server. Every Interval
// it reads the exposition of each version's catalog.Version.Metrics endpoints and keeps
// a bounded ring of timestamped samples per (service, version). It reads only the
// application metrics convention (catalog.MetricQueries): custom PromQL templates do
// not apply to it. It is safe for concurrent use.
type Scrape struct {
	log *zap.Logger
	cfg ScrapeConfig

	mu      sync.Mutex
	targets map[versionKey]*versionTarget
}

var _ Source = (*Scrape)(nil)

type versionKey struct{ service, version string }

type versionTarget struct {
	path      string
	endpoints []string // host:port
	ring      ring
	health    map[string]*TargetHealth // by host:port
}

// TargetHealth is the state of one scraped endpoint.
type TargetHealth struct {
	Service    string
	Version    string
	Endpoint   string // host:port
	URL        string
	LastScrape time.Time // start of the last attempt; zero before the first
	LastError  string    // empty when the last attempt succeeded
}

// series identifies one counter of an endpoint: the request and error counts and one
// cumulative bucket per upper bound of the latency histogram.
type series struct {
	kind uint8 // seriesRequests, seriesErrors or seriesBucket
	le   float64
}

const (
	seriesRequests uint8 = iota
	seriesErrors
	seriesBucket
)

// sample is one scrape round of a version: the counters of every endpoint that
// answered.
type sample struct {
	at         time.Time
	byEndpoint map[string]map[series]float64
}

// ring is a fixed-capacity FIFO of samples in time order.
type ring struct {
	buf   []sample
	start int
	n     int
}

func (r *ring) push(s sample) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = s
		r.n++
		return
	}
	r.buf[r.start] = s
	r.start = (r.start + 1) % len(r.buf)
}

func (r *ring) at(i int) sample { return r.buf[(r.start+i)%len(r.buf)] }

// NewScrape returns a scrape source with no targets; call Update, then Run.
func NewScrape(log *zap.Logger, cfg ScrapeConfig) *Scrape {
	return &Scrape{log: log.Named("scrape"), cfg: cfg.withDefaults(), targets: map[versionKey]*versionTarget{}}
}

// Update sets the versions to scrape: every version with Metrics endpoints. Samples of
// versions that stay are kept, whatever happened to their endpoint lists. It may be
// called at any time, from any goroutine.
func (s *Scrape) Update(services []catalog.Service) {
	size := int(s.cfg.Retention/s.cfg.Interval) + 2
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[versionKey]bool{}
	for _, svc := range services {
		for _, v := range svc.Versions {
			if len(v.Metrics) == 0 {
				continue
			}
			k := versionKey{svc.Name, v.Name}
			seen[k] = true
			t := s.targets[k]
			if t == nil {
				t = &versionTarget{ring: ring{buf: make([]sample, size)}, health: map[string]*TargetHealth{}}
				s.targets[k] = t
			}
			t.path = scrapePath(svc)
			t.endpoints = t.endpoints[:0]
			eps := map[string]bool{}
			for _, ep := range v.Metrics {
				addr := net.JoinHostPort(ep.Host, strconv.FormatUint(uint64(ep.Port), 10))
				if eps[addr] {
					continue
				}
				eps[addr] = true
				t.endpoints = append(t.endpoints, addr)
				if t.health[addr] == nil {
					t.health[addr] = &TargetHealth{Service: svc.Name, Version: v.Name, Endpoint: addr}
				}
				t.health[addr].URL = "http://" + addr + t.path
			}
			for addr := range t.health {
				if !eps[addr] {
					delete(t.health, addr)
				}
			}
		}
	}
	for k := range s.targets {
		if !seen[k] {
			delete(s.targets, k)
		}
	}
}

// Run scrapes every Interval until ctx ends, starting at once. It returns ctx.Err().
func (s *Scrape) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.ScrapeOnce(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ScrapeOnce runs one scrape round of every endpoint concurrently and records, per
// version, one sample timestamped with the clock's time at the start of the round.
// A version none of whose endpoints answered gets no sample. Errors are recorded per
// endpoint (see Targets), not returned.
func (s *Scrape) ScrapeOnce(ctx context.Context) {
	type job struct {
		key  versionKey
		addr string
		url  string
	}
	now := s.cfg.Now()
	var jobs []job
	s.mu.Lock()
	for k, t := range s.targets {
		for _, addr := range t.endpoints {
			jobs = append(jobs, job{k, addr, "http://" + addr + t.path})
		}
	}
	s.mu.Unlock()

	type result struct {
		values map[series]float64
		err    error
	}
	results := make([]result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			results[i].values, results[i].err = s.scrape(ctx, j.url, j.key)
		})
	}
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	rounds := map[versionKey]map[string]map[series]float64{}
	for i, j := range jobs {
		t := s.targets[j.key]
		if t == nil {
			continue // removed by Update during the round
		}
		if h := t.health[j.addr]; h != nil {
			h.LastScrape = now
			h.LastError = ""
			if results[i].err != nil {
				h.LastError = results[i].err.Error()
			}
		}
		if results[i].err != nil {
			s.log.Debug("scrape failed", zap.String("url", j.url), zap.Error(results[i].err))
			continue
		}
		if rounds[j.key] == nil {
			rounds[j.key] = map[string]map[series]float64{}
		}
		rounds[j.key][j.addr] = results[i].values
	}
	for k, byEndpoint := range rounds {
		s.targets[k].ring.push(sample{at: now, byEndpoint: byEndpoint})
	}
}

func (s *Scrape) scrape(ctx context.Context, url string, k versionKey) (map[series]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Ask for the text format: the one the parser below reads.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return conventionValues(families, k), nil
}

// conventionValues extracts the convention's counters of one version. Series labelled
// with another service or version are skipped, so one exposition may serve several.
func conventionValues(families map[string]*dto.MetricFamily, k versionKey) map[series]float64 {
	out := map[series]float64{{kind: seriesRequests}: 0, {kind: seriesErrors}: 0}
	matches := func(m *dto.Metric) (code string, ok bool) {
		for _, lp := range m.GetLabel() {
			switch lp.GetName() {
			case "service":
				if lp.GetValue() != k.service {
					return "", false
				}
			case "version":
				if lp.GetValue() != k.version {
					return "", false
				}
			case "code":
				code = lp.GetValue()
			}
		}
		return code, true
	}
	if mf := families[RequestsMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			code, ok := matches(m)
			if !ok {
				continue
			}
			var v float64
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Untyped != nil:
				v = m.GetUntyped().GetValue()
			default:
				continue
			}
			out[series{kind: seriesRequests}] += v
			if IsErrorCode(code) {
				out[series{kind: seriesErrors}] += v
			}
		}
	}
	if mf := families[LatencyMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			if _, ok := matches(m); !ok || m.Histogram == nil {
				continue
			}
			h := m.GetHistogram()
			hasInf := false
			for _, b := range h.GetBucket() {
				c := float64(b.GetCumulativeCount())
				if b.CumulativeCountFloat != nil {
					c = b.GetCumulativeCountFloat()
				}
				ub := b.GetUpperBound()
				hasInf = hasInf || math.IsInf(ub, +1)
				out[series{kind: seriesBucket, le: ub}] += c
			}
			if !hasInf {
				c := float64(h.GetSampleCount())
				if h.SampleCountFloat != nil {
					c = h.GetSampleCountFloat()
				}
				out[series{kind: seriesBucket, le: math.Inf(+1)}] += c
			}
		}
	}
	return out
}

// VersionStats answers from the samples taken in [at-window, at]: per endpoint and
// counter, the sum of the increases between consecutive samples in which the endpoint
// answered, a decrease counting as a reset to zero (the new value is the increase), as
// PromQL's increase does but without extrapolating to the window's edges. An endpoint
// that appears in the window counts from its first sample; one that disappears stops
// counting. Fewer than two samples in the window is ErrNoData, as is a version that is
// not scraped. P99 interpolates in the summed bucket increases (see BucketQuantile);
// ctx is not used: the answer comes from memory.
func (s *Scrape) VersionStats(_ context.Context, svc catalog.Service, version string, window time.Duration, at time.Time) (Stats, error) {
	if window <= 0 {
		return Stats{}, fmt.Errorf("window %v: must be positive", window)
	}
	from := at.Add(-window)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.targets[versionKey{svc.Name, version}]
	if t == nil {
		return Stats{}, fmt.Errorf("%s/%s is not scraped (no metrics endpoints): %w", svc.Name, version, ErrNoData)
	}
	var (
		n        int
		last     = map[string]map[series]float64{} // endpoint's previous values
		increase = map[series]float64{}
	)
	for i := 0; i < t.ring.n; i++ {
		smp := t.ring.at(i)
		if smp.at.Before(from) || smp.at.After(at) {
			continue
		}
		n++
		for ep, vals := range smp.byEndpoint {
			prev := last[ep]
			if prev != nil {
				for k, v := range vals {
					p, ok := prev[k]
					switch {
					case !ok:
						// A bucket or series new to this endpoint: count from here.
					case v >= p:
						increase[k] += v - p
					default:
						increase[k] += v // reset
					}
				}
			}
			last[ep] = vals
		}
	}
	if n < 2 {
		return Stats{}, fmt.Errorf("%s/%s: %d samples in the %v window, need 2: %w", svc.Name, version, n, window, ErrNoData)
	}
	st := Stats{Requests: increase[series{kind: seriesRequests}], Errors: increase[series{kind: seriesErrors}]}
	var buckets []Bucket
	for k, v := range increase {
		if k.kind == seriesBucket {
			buckets = append(buckets, Bucket{UpperBound: k.le, Count: v})
		}
	}
	if q := BucketQuantile(0.99, buckets); !math.IsNaN(q) && !math.IsInf(q, 0) && q >= 0 {
		st.P99 = time.Duration(q * float64(time.Second))
	}
	return st, nil
}

// Targets returns the state of every scraped endpoint, sorted by service, version and
// endpoint.
func (s *Scrape) Targets() []TargetHealth {
	s.mu.Lock()
	var out []TargetHealth
	for _, t := range s.targets {
		for _, h := range t.health {
			out = append(out, *h)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Endpoint < b.Endpoint
	})
	return out
}
