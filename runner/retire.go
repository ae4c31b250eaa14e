package runner

import (
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// retireLocked removes the clusters that left their service's route (a catalog reload
// dropped their version, or the service) once every proxy watching the route has ACKed
// a route without them, or after the ACK timeout (controller.DefaultAckTimeout), which
// is recorded as a cluster_late event naming the stragglers: they may fail requests
// still routed to those clusters. Until then the clusters stay served, with no route
// naming them (see publish.Publisher.Retire).
func (r *Runner) retireLocked() {
	done, err := r.pub.Retire(r.opts.XDS.RouteStragglers, controller.DefaultAckTimeout)
	if err != nil {
		r.log.Warn("remove clusters that left their route; retried on the next tick", zap.Error(err))
		return
	}
	for _, d := range done {
		if !d.Late {
			r.log.Info("clusters removed: every proxy ACKed a route without them",
				zap.String("service", d.Service), zap.Strings("versions", d.Versions))
			continue
		}
		reason := fmt.Sprintf("proxies did not ACK a route without the cluster of %s within %s; removed it (still holding a route naming it: %s)",
			strings.Join(d.Versions, ", "), model.Duration(controller.DefaultAckTimeout), strings.Join(d.Stragglers, ", "))
		ev := controller.Event{Time: r.opts.Now(), Service: d.Service, Kind: controller.EventClusterLate, Reason: reason}
		if e, ok := r.active[d.Service]; ok {
			ro := e.r
			ev.RolloutID, ev.State, ev.Stage, ev.Generation, ev.Weight = ro.ID, ro.State, ro.Stage, ro.Generation, ro.CanaryWeight()
		}
		r.log.Warn("proxies did not ACK a route without a removed version's cluster in time; removed it",
			zap.String("service", d.Service), zap.Strings("versions", d.Versions), zap.Strings("stragglers", d.Stragglers))
		r.recordClusterLateLocked(ev)
	}
}
