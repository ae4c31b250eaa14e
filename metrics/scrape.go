package metrics

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
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
// it reads each exposition endpoint once, the service's catalog.MetricQueries.Targets
// (Envoy admin addresses, say) and each version's catalog.Version.Metrics, and keeps a
// bounded ring of timestamped samples per (service, version). It reads the series of
// the service's convention: Envoy's per-cluster stats (catalog.ConventionEnvoy, where
// one exposition carries every cluster of the proxy) or the application metrics
// convention (catalog.ConventionApp). Custom PromQL templates do not apply to it. It is
// safe for concurrent use.
type Scrape struct {
	log *zap.Logger
	cfg ScrapeConfig

	mu       sync.Mutex
	versions map[versionKey]*versionTarget
	expos    map[string]*exposition // by URL
}

var _ Source = (*Scrape)(nil)

type versionKey struct{ service, version string }

// versionTarget is one scraped version: the expositions that carry its series and its
// samples.
type versionTarget struct {
	convention string
	urls       []string
	ring       ring
}

// exposition is one scraped URL and the state of its last scrape.
type exposition struct {
	addr       string // host:port
	lastScrape time.Time
	lastError  string
}

// TargetHealth is the state of one scraped endpoint of one version. An exposition that
// serves several versions appears once per version.
type TargetHealth struct {
	Service    string
	Version    string
	Endpoint   string // host:port
	URL        string
	LastScrape time.Time // start of the last attempt; zero before the first
	LastError  string    // empty when the last attempt succeeded
}

// series identifies one counter of an endpoint: the request and error counts, one
// cumulative bucket per upper bound (seconds) of a classic latency histogram, and the
// buckets (per bucket, not cumulative; upper bound in seconds) and observation count of
// a native latency histogram, with its layout (seriesNativeLayout: le is the zero
// bucket's threshold, the value the schema), whose change between two samples makes
// the native counts of that interval incomparable.
type series struct {
	kind uint8 // seriesRequests, seriesErrors, seriesBucket, seriesNative, ...
	le   float64
}

const (
	seriesRequests uint8 = iota
	seriesErrors
	seriesBucket
	seriesNative
	seriesNativeCount
	seriesNativeLayout
)

// maxNativeSchema is the finest native histogram resolution the scrape source keeps:
// schema 3, buckets ×1.0905 wide, as fine as octoroll's classic ladder
// (LatencyBucketFactor). Finer histograms are merged down to it, which keeps the
// samples of a histogram whose schema is 8 (×1.0027) to a few hundred buckets.
const maxNativeSchema = 3

// sample is one scrape round of a version: the counters of every exposition that
// answered, by URL.
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
	return &Scrape{
		log: log.Named("scrape"), cfg: cfg.withDefaults(),
		versions: map[versionKey]*versionTarget{}, expos: map[string]*exposition{},
	}
}

// Update sets the versions to scrape: every version whose service has Targets or that
// has Metrics endpoints of its own. Samples of versions that stay are kept, whatever
// happened to their endpoint lists, and so is the state of expositions that stay. It
// may be called at any time, from any goroutine.
func (s *Scrape) Update(services []catalog.Service) {
	size := int(s.cfg.Retention/s.cfg.Interval) + 2
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[versionKey]bool{}
	used := map[string]bool{}
	for _, svc := range services {
		path := scrapePath(svc)
		for _, v := range svc.Versions {
			var urls []string
			dup := map[string]bool{}
			for _, ep := range append(slices.Clone(svc.Metrics.Targets), v.Metrics...) {
				addr := net.JoinHostPort(strings.ToLower(ep.Host), strconv.FormatUint(uint64(ep.Port), 10))
				u := "http://" + addr + path
				if dup[u] {
					continue
				}
				dup[u] = true
				urls = append(urls, u)
				used[u] = true
				if s.expos[u] == nil {
					s.expos[u] = &exposition{addr: addr}
				}
			}
			if len(urls) == 0 {
				continue
			}
			k := versionKey{svc.Name, v.Name}
			seen[k] = true
			t := s.versions[k]
			if t == nil {
				t = &versionTarget{ring: ring{buf: make([]sample, size)}}
				s.versions[k] = t
			}
			if conv := svc.Metrics.EffectiveConvention(); conv != t.convention {
				if t.convention != "" {
					// Samples of the other convention's counters are not comparable.
					t.ring = ring{buf: make([]sample, size)}
				}
				t.convention = conv
			}
			t.urls = urls
		}
	}
	for k := range s.versions {
		if !seen[k] {
			delete(s.versions, k)
		}
	}
	for u := range s.expos {
		if !used[u] {
			delete(s.expos, u)
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

// ScrapeOnce runs one scrape round: every exposition once, concurrently, then, per
// version, one sample of the counters of the expositions that answered, timestamped
// with the clock's time at the start of the round. A version none of whose expositions
// answered gets no sample. Errors are recorded per exposition (see Targets and
// VersionStats), not returned.
func (s *Scrape) ScrapeOnce(ctx context.Context) {
	type reader struct {
		key        versionKey
		convention string
	}
	now := s.cfg.Now()
	s.mu.Lock()
	readers := map[string][]reader{}
	for k, t := range s.versions {
		for _, u := range t.urls {
			readers[u] = append(readers[u], reader{k, t.convention})
		}
	}
	s.mu.Unlock()

	type result struct {
		url    string
		values map[versionKey]map[series]float64
		err    error
	}
	results := make([]result, 0, len(readers))
	for u := range readers {
		results = append(results, result{url: u})
	}
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			r := &results[i]
			families, err := s.scrape(ctx, r.url)
			if err != nil {
				r.err = err
				return
			}
			r.values = map[versionKey]map[series]float64{}
			for _, rd := range readers[r.url] {
				if rd.convention == catalog.ConventionApp {
					r.values[rd.key] = appValues(families, rd.key)
				} else {
					r.values[rd.key] = envoyValues(families, ClusterName(rd.key.service, rd.key.version))
				}
			}
		})
	}
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	rounds := map[versionKey]map[string]map[series]float64{}
	for _, r := range results {
		e := s.expos[r.url]
		if e == nil {
			continue // removed by Update during the round
		}
		e.lastScrape = now
		e.lastError = ""
		if r.err != nil {
			e.lastError = r.err.Error()
			s.log.Debug("scrape failed", zap.String("url", r.url), zap.Error(r.err))
			continue
		}
		for k, vals := range r.values {
			if rounds[k] == nil {
				rounds[k] = map[string]map[series]float64{}
			}
			rounds[k][r.url] = vals
		}
	}
	for k, byEndpoint := range rounds {
		if t := s.versions[k]; t != nil {
			t.ring.push(sample{at: now, byEndpoint: byEndpoint})
		}
	}
}

func (s *Scrape) scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Prefer the protobuf format, the only one that carries native histograms; the
	// text format (Envoy's) carries classic histograms only.
	req.Header.Set("Accept", scrapeAccept)
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	// Read one byte more than allowed: a body cut at the limit could still parse, with
	// some clusters' series missing, and their counters would then restart from zero.
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		return nil, fmt.Errorf("GET %s: exposition larger than %d bytes", url, s.cfg.MaxBodyBytes)
	}
	if expfmt.ResponseFormat(resp.Header).FormatType() == expfmt.TypeProtoDelim {
		families, err := decodeProto(body)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", url, err)
		}
		return families, nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return families, nil
}

// scrapeAccept asks for the delimited protobuf format first, as Prometheus does, then
// the text format.
const scrapeAccept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7," +
	"text/plain;version=0.0.4;q=0.3"

// decodeProto reads a delimited protobuf exposition, metric families of the same name
// merged.
func decodeProto(body []byte) (map[string]*dto.MetricFamily, error) {
	dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim).WithEscapingScheme(model.NoEscaping))
	families := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return families, nil
		}
		if err != nil {
			return nil, err
		}
		if prev := families[mf.GetName()]; prev != nil {
			prev.Metric = append(prev.Metric, mf.Metric...)
			continue
		}
		families[mf.GetName()] = mf
	}
}

// counterValue is the value of a counter or untyped sample; ok is false for others.
func counterValue(m *dto.Metric) (float64, bool) {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// addHistograms adds the latency histograms hs of one version to out, their bounds
// multiplied by scale (to seconds): the cumulative buckets of the classic ones, and a
// +Inf bucket from the sample count when one has none; the buckets of the native ones,
// merged down to their coarsest schema (at most maxNativeSchema), and their count. A
// histogram that is native (it has a schema) is read as native, whatever classic
// buckets it also carries.
func addHistograms(out map[series]float64, hs []*dto.Histogram, scale float64) {
	var native []*dto.Histogram
	schema := int32(maxNativeSchema)
	for _, h := range hs {
		if h.Schema != nil {
			if s := h.GetSchema(); s < -4 || s > 8 {
				continue // not a schema of exponential buckets: nothing to read
			}
			native = append(native, h)
			schema = min(schema, h.GetSchema())
			continue
		}
		hasInf := false
		for _, b := range h.GetBucket() {
			c := float64(b.GetCumulativeCount())
			if b.CumulativeCountFloat != nil {
				c = b.GetCumulativeCountFloat()
			}
			ub := b.GetUpperBound()
			if math.IsInf(ub, +1) {
				hasInf = true
			} else {
				ub *= scale
			}
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
	for _, h := range native {
		// Latencies are not negative: the zero bucket, and any negative bucket, count
		// at the zero threshold.
		zero := series{kind: seriesNative, le: h.GetZeroThreshold() * scale}
		out[series{kind: seriesNativeLayout, le: zero.le}] = float64(schema)
		c := float64(h.GetZeroCount())
		if h.ZeroCountFloat != nil {
			c = h.GetZeroCountFloat()
		}
		out[zero] += c
		nativeBuckets(h.GetNegativeSpan(), h.GetNegativeDelta(), h.GetNegativeCount(), func(_ int32, c float64) { out[zero] += c })
		shift := h.GetSchema() - schema
		nativeBuckets(h.GetPositiveSpan(), h.GetPositiveDelta(), h.GetPositiveCount(), func(i int32, c float64) {
			out[series{kind: seriesNative, le: NativeBucketBound(schema, ((i-1)>>shift)+1) * scale}] += c
		})
		c = float64(h.GetSampleCount())
		if h.SampleCountFloat != nil {
			c = h.GetSampleCountFloat()
		}
		out[series{kind: seriesNativeCount}] += c
	}
}

// nativeBuckets calls f with the index and count of every bucket of a native
// histogram's spans: counts delta-encoded (integer histograms) or absolute (float
// histograms).
func nativeBuckets(spans []*dto.BucketSpan, deltas []int64, counts []float64, f func(index int32, count float64)) {
	var (
		idx  int32
		n    int
		last int64
	)
	for _, sp := range spans {
		idx += sp.GetOffset()
		for range sp.GetLength() {
			switch {
			case n < len(deltas):
				last += deltas[n]
				f(idx, float64(last))
			case n < len(counts):
				f(idx, counts[n])
			default:
				return // spans longer than their counts: a malformed histogram
			}
			n++
			idx++
		}
	}
}

// appValues extracts the app convention's counters of one version: the series labelled
// with its service and version, so one exposition may serve several.
func appValues(families map[string]*dto.MetricFamily, k versionKey) map[series]float64 {
	out := map[series]float64{{kind: seriesRequests}: 0, {kind: seriesErrors}: 0}
	// A series counts for the version only when it carries both its service and version
	// labels: one without would count for every version read from the exposition, and
	// the canary would look exactly like stable.
	matches := func(m *dto.Metric) (code string, ok bool) {
		var svc, ver bool
		for _, lp := range m.GetLabel() {
			switch lp.GetName() {
			case "service":
				svc = lp.GetValue() == k.service
			case "version":
				ver = lp.GetValue() == k.version
			case "code":
				code = lp.GetValue()
			}
		}
		return code, svc && ver
	}
	if mf := families[RequestsMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			code, ok := matches(m)
			if !ok {
				continue
			}
			v, ok := counterValue(m)
			if !ok {
				continue
			}
			out[series{kind: seriesRequests}] += v
			if IsErrorCode(code) {
				out[series{kind: seriesErrors}] += v
			}
		}
	}
	if mf := families[LatencyMetric]; mf != nil {
		var hs []*dto.Histogram
		for _, m := range mf.GetMetric() {
			if _, ok := matches(m); ok && m.Histogram != nil {
				hs = append(hs, m.GetHistogram())
			}
		}
		addHistograms(out, hs, 1)
	}
	return out
}

// envoyValues extracts the counters of one Envoy cluster from Envoy's stats: responses
// of every class are requests, class 5 are errors; the request time histogram is in
// milliseconds.
func envoyValues(families map[string]*dto.MetricFamily, cluster string) map[series]float64 {
	out := map[series]float64{{kind: seriesRequests}: 0, {kind: seriesErrors}: 0}
	label := func(m *dto.Metric, name string) string {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == name {
				return lp.GetValue()
			}
		}
		return ""
	}
	if mf := families[EnvoyRequestsMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			if label(m, EnvoyClusterLabel) != cluster {
				continue
			}
			v, ok := counterValue(m)
			if !ok {
				continue
			}
			out[series{kind: seriesRequests}] += v
			if label(m, EnvoyCodeClassLabel) == "5" {
				out[series{kind: seriesErrors}] += v
			}
		}
	}
	if mf := families[EnvoyLatencyMetric]; mf != nil {
		var hs []*dto.Histogram
		for _, m := range mf.GetMetric() {
			if label(m, EnvoyClusterLabel) == cluster && m.Histogram != nil {
				hs = append(hs, m.GetHistogram())
			}
		}
		addHistograms(out, hs, 1.0/1000)
	}
	return out
}

// VersionStats answers from the samples taken in [at-window, at]: per exposition and
// counter, the sum of the increases between consecutive samples in which the endpoint
// answered, a decrease counting as a reset to zero (the new value is the increase), as
// PromQL's increase does but without extrapolating to the window's edges. An endpoint
// that appears in the window counts from its first sample; one that disappears stops
// counting; a series that appears on an endpoint already sampled counts from zero.
// Fewer than two samples in the window is ErrNoData, as is a version that is not
// scraped. An exposition of the version whose last scrape failed makes the answer an
// error naming it (not ErrNoData): the figures of the others alone could pass a
// version whose failing instances are the ones that went quiet.
//
// Latency is the summed increase of the version's latency histograms: classic ones
// (the text format, Envoy's, carries only these) and native ones, read where the
// exposition answers in the protobuf format (client_golang's does); native bucket
// counts are not counted across an interval in which an endpoint's histogram changed
// schema or zero threshold. P99 interpolates in the same increases (see
// BucketQuantile), before they are rounded. ctx is not used: the answer comes from
// memory.
func (s *Scrape) VersionStats(_ context.Context, svc catalog.Service, version string, window time.Duration, at time.Time) (Stats, error) {
	if window <= 0 {
		return Stats{}, fmt.Errorf("window %v: must be positive", window)
	}
	from := at.Add(-window)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.versions[versionKey{svc.Name, version}]
	if t == nil {
		return Stats{}, fmt.Errorf("%s/%s is not scraped (no metrics targets or endpoints): %w", svc.Name, version, ErrNoData)
	}
	for _, u := range t.urls {
		if e := s.expos[u]; e != nil && e.lastError != "" {
			return Stats{}, fmt.Errorf("%s/%s: scrape target %s failed: %s", svc.Name, version, e.addr, e.lastError)
		}
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
				relayout := nativeLayoutChanged(prev, vals)
				for k, v := range vals {
					if k.kind == seriesNativeLayout || relayout && (k.kind == seriesNative || k.kind == seriesNativeCount) {
						continue
					}
					p, ok := prev[k]
					switch {
					case !ok:
						// A series new to an exposition that answered before was
						// created since: it counts from zero, as Envoy creates a
						// cluster's stats on its first request.
						increase[k] += v
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
		return Stats{}, fmt.Errorf("%s/%s: %d samples in the %s window, need 2: %w", svc.Name, version, n, catalog.Duration(window), ErrNoData)
	}
	st := Stats{Requests: increase[series{kind: seriesRequests}], Errors: increase[series{kind: seriesErrors}]}
	var classic, native []Bucket
	for k, v := range increase {
		switch k.kind {
		case seriesBucket:
			classic = append(classic, Bucket{UpperBound: k.le, Count: v})
		case seriesNative:
			native = append(native, Bucket{UpperBound: k.le, Count: v})
		}
	}
	if len(native) > 0 {
		native = nativeCumulative(native, increase[series{kind: seriesNativeCount}])
	}
	buckets := mergeHistograms(classic, native)
	if q := BucketQuantile(0.99, slices.Clone(buckets)); !math.IsNaN(q) && !math.IsInf(q, 0) && q >= 0 {
		st.P99 = time.Duration(q * float64(time.Second))
	}
	st.Latency = Histogram(buckets)
	return st, nil
}

// nativeLayoutChanged reports whether the native histograms of an endpoint changed
// schema or zero threshold between two samples: their buckets then have other bounds,
// and the increase of a bucket across the change is meaningless.
func nativeLayoutChanged(prev, cur map[series]float64) bool {
	n := 0
	for k, v := range cur {
		if k.kind != seriesNativeLayout {
			continue
		}
		n++
		if p, ok := prev[k]; !ok || p != v {
			return true
		}
	}
	for k := range prev {
		if k.kind == seriesNativeLayout {
			n--
		}
	}
	return n != 0
}

// nativeCumulative turns the per-bucket increases of a native histogram into
// cumulative buckets with a +Inf bucket of count observations (at least the sum of the
// buckets).
func nativeCumulative(perBucket []Bucket, count float64) []Bucket {
	slices.SortFunc(perBucket, func(a, b Bucket) int { return cmp.Compare(a.UpperBound, b.UpperBound) })
	out := make([]Bucket, 0, len(perBucket)+1)
	var cum float64
	for _, b := range perBucket {
		cum += b.Count
		out = append(out, Bucket{UpperBound: b.UpperBound, Count: cum})
	}
	return append(out, Bucket{UpperBound: math.Inf(+1), Count: max(count, cum)})
}

// mergeHistograms returns the sum of two cumulative histograms (each with a +Inf
// bucket, or empty) whose bounds may differ, as one cumulative histogram over the
// union of their bounds: at each bound, the requests of each histogram known to be at
// most that bound (those of its buckets whose upper bound is no higher). Where the
// bounds differ that undercounts, never overcounts, the fast requests. It happens only
// when some of a version's instances expose a native histogram and others a classic
// one; with one kind, the histogram is returned as it is.
func mergeHistograms(a, b []Bucket) []Bucket {
	switch {
	case len(a) == 0:
		return b
	case len(b) == 0:
		return a
	}
	perBucket := map[float64]float64{}
	for _, h := range [][]Bucket{a, b} {
		h = slices.Clone(h)
		slices.SortFunc(h, func(x, y Bucket) int { return cmp.Compare(x.UpperBound, y.UpperBound) })
		monotonic(h)
		below := 0.0
		for _, x := range h {
			perBucket[x.UpperBound] += x.Count - below
			below = x.Count
		}
	}
	out := make([]Bucket, 0, len(perBucket))
	for ub, c := range perBucket {
		out = append(out, Bucket{UpperBound: ub, Count: c})
	}
	slices.SortFunc(out, func(x, y Bucket) int { return cmp.Compare(x.UpperBound, y.UpperBound) })
	for i := 1; i < len(out); i++ {
		out[i].Count += out[i-1].Count
	}
	return out
}

// Targets returns the state of every scraped endpoint, sorted by service, version and
// endpoint.
func (s *Scrape) Targets() []TargetHealth {
	s.mu.Lock()
	var out []TargetHealth
	for k, t := range s.versions {
		for _, u := range t.urls {
			e := s.expos[u]
			out = append(out, TargetHealth{
				Service: k.service, Version: k.version, Endpoint: e.addr, URL: u,
				LastScrape: e.lastScrape, LastError: e.lastError,
			})
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
