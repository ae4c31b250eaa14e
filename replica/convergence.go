package replica

import (
	"fmt"
	"slices"

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

// ClusterWarmth is local (how many of this replica's proxies watching service's route
// hold the clusters of versions) joined with every other live replica's record. A
// replica that does not serve one of the clusters yet counts all its proxies of the
// route as stragglers, named by replica.
func (r *Replica) ClusterWarmth(service string, versions []string, local xds.ClusterWarmth) xds.ClusterWarmth {
	out := local
	out.Stragglers = append([]string(nil), local.Stragglers...)
	for _, p := range r.Replicas() {
		if p.ID == r.opts.Self.ID {
			continue
		}
		subscribed := p.Routes[service].Subscribed
		if subscribed == 0 {
			continue
		}
		out.Subscribed += subscribed
		holding := subscribed
		var stragglers []string
		for _, v := range versions {
			w, ok := p.Clusters[service][v]
			if !ok {
				holding = 0
				stragglers = []string{fmt.Sprintf("%d proxies of replica %s (cluster %s not served there yet)", subscribed, p.ID, v)}
				break
			}
			if w.Holding < holding {
				holding = w.Holding
			}
			stragglers = append(stragglers, w.Stragglers...)
		}
		out.Holding += holding
		slices.Sort(stragglers)
		out.Stragglers = append(out.Stragglers, slices.Compact(stragglers)...)
	}
	return out
}
