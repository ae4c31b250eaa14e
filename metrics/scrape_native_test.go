package metrics_test

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/metrics"
)

// protoTarget serves hand-built histograms of checkout/v2 in the delimited protobuf
// format over real HTTP, as client_golang does when asked for it.
type protoTarget struct {
	mu  sync.Mutex
	h   *dto.Histogram
	srv *httptest.Server
}

func newProtoTarget(t *testing.T) *protoTarget {
	p := &protoTarget{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		h := proto.Clone(p.h).(*dto.Histogram)
		p.mu.Unlock()
		labels := []*dto.LabelPair{{Name: proto.String("service"), Value: proto.String("checkout")}, {Name: proto.String("version"), Value: proto.String("v2")}}
		mf := &dto.MetricFamily{Name: proto.String(metrics.LatencyMetric), Type: dto.MetricType_HISTOGRAM.Enum(),
			Metric: []*dto.Metric{{Label: labels, Histogram: h}}}
		format := expfmt.NewFormat(expfmt.TypeProtoDelim)
		w.Header().Set("Content-Type", string(format))
		if err := expfmt.NewEncoder(w, format).Encode(mf); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *protoTarget) set(h *dto.Histogram) { p.mu.Lock(); p.h = h; p.mu.Unlock() }

// native builds an integer native histogram: one span from index first, counts absolute.
func native(schema int32, first int32, zero uint64, counts ...int64) *dto.Histogram {
	var deltas []int64
	var prev, total int64
	for _, c := range counts {
		deltas = append(deltas, c-prev)
		prev = c
		total += c
	}
	return &dto.Histogram{Schema: proto.Int32(schema), ZeroThreshold: proto.Float64(1e-9), ZeroCount: proto.Uint64(zero),
		SampleCount:   proto.Uint64(uint64(total) + zero),
		PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(first), Length: proto.Uint32(uint32(len(counts)))}},
		PositiveDelta: deltas}
}

// TestScrapeNativeHistogram: the scrape source reads a native histogram from the
// protobuf format, merges a schema finer than 3 down to 3, and does not count native
// buckets across a change of schema.
func TestScrapeNativeHistogram(t *testing.T) {
	p := newProtoTarget(t)
	addr := strings.TrimPrefix(p.srv.URL, "http://")
	svc := catalog.Service{Name: "checkout", Stable: "v2", Versions: []catalog.Version{{Name: "v2"}},
		Metrics: catalog.MetricQueries{Convention: catalog.ConventionApp, Targets: []catalog.Endpoint{endpoint(t, addr)}}}
	clk := &clock{now: time.Unix(1000, 0)}
	s := metrics.NewScrape(zaptest.NewLogger(t), metrics.ScrapeConfig{Interval: 5 * time.Second, Now: clk.Now})
	s.Update([]catalog.Service{svc})
	ctx := t.Context()
	round := func(h *dto.Histogram) metrics.Stats {
		t.Helper()
		p.set(h)
		clk.Add(5 * time.Second)
		s.ScrapeOnce(ctx)
		st, err := s.VersionStats(ctx, svc, "v2", 5*time.Second, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	p.set(native(5, -200, 1, 1, 2, 3, 4))
	s.ScrapeOnce(ctx)
	// Schema 5 indices -200..-197 merge, 4 at a time, into schema 3 indices -50 and -49:
	// (i-1)>>2 + 1 maps -200 to -50 and -199..-197 to -49.
	st := round(native(5, -200, 2, 11, 12, 13, 14))
	inf := math.Inf(+1)
	want := []metrics.Bucket{{UpperBound: 1e-9, Count: 1}, {UpperBound: metrics.NativeBucketBound(3, -50), Count: 11}, {UpperBound: metrics.NativeBucketBound(3, -49), Count: 41}, {UpperBound: inf, Count: 41}}
	if len(st.Latency) != len(want) {
		t.Fatalf("latency %v, want %v", st.Latency, want)
	}
	for i := range want {
		if st.Latency[i] != want[i] {
			t.Fatalf("latency %v, want %v", st.Latency, want)
		}
	}
	// The instance lowers its resolution: the interval's native counts are not
	// comparable and not counted (a window of that interval alone has no histogram);
	// the next interval counts again.
	if st := round(native(2, -25, 2, 60, 1)); st.Latency != nil {
		t.Errorf("across a schema change: %v, want no histogram", st.Latency)
	}
	st = round(native(2, -25, 2, 65, 3))
	want = []metrics.Bucket{{UpperBound: 1e-9, Count: 0}, {UpperBound: metrics.NativeBucketBound(2, -25), Count: 5}, {UpperBound: metrics.NativeBucketBound(2, -24), Count: 7}, {UpperBound: inf, Count: 7}}
	for i := range want {
		if i >= len(st.Latency) || st.Latency[i] != want[i] {
			t.Fatalf("after the change: %v, want %v", st.Latency, want)
		}
	}
}
