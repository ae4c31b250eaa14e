package replica

import (
	"fmt"

	"github.com/octoacme/octoroll/xds"
)

// Convergence is local (this replica's proxies' convergence on service's route)
// joined with every other live replica's record: the proxies of all replicas count.
// A replica whose proxies ACKed the same route version adds its counts, stragglers and
// latest ACK; one that serves another route version (it has not caught up with the
// leader yet) adds its proxies as stragglers, named by replica.
func (r *Replica) Convergence(service string, local xds.Convergence) xds.Convergence {
	out := local
	out.Stragglers = append([]string(nil), local.Stragglers...)
	for _, p := range r.Replicas() {
		if p.ID == r.opts.Self.ID {
			continue
		}
		c, ok := p.Routes[service]
		if !ok || c.Subscribed == 0 {
			continue
		}
		out.Subscribed += c.Subscribed
		if c.RouteVersion != local.RouteVersion {
			out.Stragglers = append(out.Stragglers, fmt.Sprintf("%d proxies of replica %s (route version %s)", c.Subscribed, p.ID, c.RouteVersion))
			continue
		}
		out.Acked += c.Acked
		out.Stragglers = append(out.Stragglers, c.Stragglers...)
		if c.AckedAt.After(out.AckedAt) {
			out.AckedAt = c.AckedAt
		}
		if out.NACK == nil && c.NACK != nil {
			out.NACK = c.NACK
		}
	}
	return out
}
