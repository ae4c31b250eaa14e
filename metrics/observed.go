package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/octoacme/octoroll/catalog"
)

// Observed wraps src so that report learns after every VersionStats whether the source
// answered: ErrNoData counts as up (the source answered, the data is empty), any other
// error as down. The wrapper forwards Update to src when src has it (Scrape does), so
// it can stand wherever src stood.
func Observed(src Source, report func(up bool)) Source {
	return observed{src: src, report: report}
}

type observed struct {
	src    Source
	report func(up bool)
}

func (o observed) VersionStats(ctx context.Context, svc catalog.Service, version string, window time.Duration, at time.Time) (Stats, error) {
	st, err := o.src.VersionStats(ctx, svc, version, window, at)
	o.report(err == nil || errors.Is(err, ErrNoData))
	return st, err
}

// Update forwards the services to the wrapped source when it follows them.
func (o observed) Update(services []catalog.Service) {
	if u, ok := o.src.(interface{ Update([]catalog.Service) }); ok {
		u.Update(services)
	}
}

// ErrNoQueries is returned by QueryValue of a source that evaluates no PromQL (the
// embedded scrape source).
var ErrNoQueries = errors.New("query checks need a Prometheus server: the embedded scrape source evaluates no PromQL")

// QueryValue forwards to the wrapped source when it is a Querier, and reports whether
// it answered as VersionStats does.
func (o observed) QueryValue(ctx context.Context, svc catalog.Service, version, tmpl string, window time.Duration, at time.Time) (float64, error) {
	q, ok := o.src.(Querier)
	if !ok {
		return 0, ErrNoQueries
	}
	v, err := q.QueryValue(ctx, svc, version, tmpl, window, at)
	o.report(err == nil || errors.Is(err, ErrNoData))
	return v, err
}
