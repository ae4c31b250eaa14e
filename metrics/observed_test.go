package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/metrics"
)

type scripted struct {
	err     error
	updates int
}

func (s *scripted) VersionStats(context.Context, catalog.Service, string, time.Duration, time.Time) (metrics.Stats, error) {
	return metrics.Stats{Requests: 1}, s.err
}

func (s *scripted) Update([]catalog.Service) { s.updates++ }

func TestObserved(t *testing.T) {
	src := &scripted{}
	var ups []bool
	o := metrics.Observed(src, func(up bool) { ups = append(ups, up) })
	for _, err := range []error{nil, fmt.Errorf("query: %w", metrics.ErrNoData), errors.New("connection refused")} {
		src.err = err
		if _, got := o.VersionStats(context.Background(), catalog.Service{}, "v1", time.Minute, time.Time{}); !errors.Is(got, err) {
			t.Fatalf("error %v, want %v passed through", got, err)
		}
	}
	if want := []bool{true, true, false}; fmt.Sprint(ups) != fmt.Sprint(want) {
		t.Fatalf("reported %v, want %v", ups, want)
	}
	o.(interface{ Update([]catalog.Service) }).Update(nil)
	if src.updates != 1 {
		t.Fatalf("Update forwarded %d times, want 1", src.updates)
	}
}
