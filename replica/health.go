package replica

import (
	"context"
	"encoding/json"
	"sync"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/healthcheck"
)

// Prober is the health-check prober as Health uses it (*healthcheck.Prober).
type Prober interface {
	Update(services []catalog.Service)
	Status(service, version string) healthcheck.VersionHealth
	Changes() <-chan struct{}
}

// healthKey is where the leader writes its health-check results, under the cluster
// keys.
const healthKey = "health"

// Health is the health-check state every replica publishes (EDS marks, the rollouts'
// health observations): the leader's. Only the leader probes; it writes every change
// of its results to etcd under its fence, and the followers apply what it wrote, so
// that every replica marks the same endpoints unhealthy. A replica just elected keeps
// the results it read for the endpoints its own prober has not decided yet.
type Health struct {
	rep     *Replica
	prober  Prober
	changes chan struct{}

	mu       sync.Mutex
	services []catalog.Service
	leading  bool
	shared   map[string]map[string]healthcheck.VersionHealth // the leader's, as read from etcd
	written  []byte
}

// NewHealth shares prober's results through r. Call it before r.Run.
func NewHealth(r *Replica, prober Prober) *Health {
	h := &Health{rep: r, prober: prober, changes: make(chan struct{}, 1)}
	r.watchKey(healthKey, h.apply)
	return h
}

// Update sets the services to probe; only the leader's prober probes them.
func (h *Health) Update(services []catalog.Service) {
	h.mu.Lock()
	h.services = services
	leading := h.leading
	h.mu.Unlock()
	if leading {
		h.prober.Update(services)
	}
}

// Status is the health of one version: the leader's.
func (h *Health) Status(service, version string) healthcheck.VersionHealth {
	h.mu.Lock()
	leading, shared := h.leading, h.shared[service][version]
	h.mu.Unlock()
	if !leading {
		return shared
	}
	own := h.prober.Status(service, version)
	if own.Healthy+len(own.Unhealthy) < own.Total && shared.Total > 0 {
		return shared // its own probes have not decided yet
	}
	return own
}

// Changes is signalled when Status may answer differently.
func (h *Health) Changes() <-chan struct{} { return h.changes }

func (h *Health) signal() {
	select {
	case h.changes <- struct{}{}:
	default:
	}
}

// Run follows the leadership and, while leading, writes every change of the prober's
// results, until ctx ends.
func (h *Health) Run(ctx context.Context) error {
	lead := h.rep.leaderChanges()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lead:
			leading := h.rep.Leading()
			h.mu.Lock()
			changed := h.leading != leading
			h.leading = leading
			services := h.services
			h.mu.Unlock()
			if !changed {
				continue
			}
			if leading {
				h.prober.Update(services)
			} else {
				h.prober.Update(nil) // a follower probes nothing
			}
			h.signal()
		case <-h.prober.Changes():
			h.write()
			h.signal()
		}
	}
}

// write stores the leader's results, when they changed.
func (h *Health) write() {
	h.mu.Lock()
	if !h.leading {
		h.mu.Unlock()
		return
	}
	services := h.services
	h.mu.Unlock()
	snap := map[string]map[string]healthcheck.VersionHealth{}
	for _, s := range services {
		for _, v := range s.Versions {
			if snap[s.Name] == nil {
				snap[s.Name] = map[string]healthcheck.VersionHealth{}
			}
			snap[s.Name][v.Name] = h.prober.Status(s.Name, v.Name)
		}
	}
	raw, err := json.Marshal(snap)
	if err != nil {
		return
	}
	h.mu.Lock()
	same := string(raw) == string(h.written)
	h.mu.Unlock()
	if same {
		return
	}
	if err := h.rep.opts.Store.PutShared(h.rep.clusterKey(healthKey), raw); err != nil {
		h.rep.log.Warn("publish the health-check results to the other replicas", zap.Error(err))
		return
	}
	h.mu.Lock()
	h.written = raw
	h.mu.Unlock()
}

// apply takes the results the leader wrote.
func (h *Health) apply(raw []byte) {
	var snap map[string]map[string]healthcheck.VersionHealth
	if err := json.Unmarshal(raw, &snap); err != nil {
		h.rep.log.Warn("health-check results in etcd do not decode", zap.Error(err))
		return
	}
	h.mu.Lock()
	h.shared = snap
	h.mu.Unlock()
	h.signal()
}
