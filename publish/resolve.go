package publish

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/translate"
)

// HostResolver resolves a DNS name to IP addresses. *net.Resolver satisfies it.
type HostResolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ResolveEndpoints returns a copy of d in which every endpoint host that is a DNS name is
// replaced by the IP addresses it resolves to (same port, sorted, duplicates dropped).
// Translation needs IP addresses: Envoy rejects DNS names in EDS socket addresses, and
// gRPC-Go would dial a name as one endpoint, hiding the addresses behind it from its load
// balancer. A name marked in d.Unhealthy marks every address it resolves to: the health
// check probed the name, not one of its addresses. It calls out, through r, which is
// why it is not part of the pure translate package; call it before translating and
// again when the names may have moved. d is not modified.
func ResolveEndpoints(ctx context.Context, r HostResolver, d translate.Desired) (translate.Desired, error) {
	out := d
	out.Service.Versions = make([]model.Version, len(d.Service.Versions))
	if d.Unhealthy != nil {
		out.Unhealthy = make(map[string][]string, len(d.Unhealthy))
	}
	var errs []error
	for i, v := range d.Service.Versions {
		down := map[string]bool{}
		for _, a := range d.Unhealthy[v.Name] {
			down[a] = true
		}
		var marked []string
		v.Endpoints = resolveVersion(ctx, r, v.Endpoints, func(from model.Endpoint, to []model.Endpoint) {
			if down[from.String()] {
				for _, ep := range to {
					marked = append(marked, ep.String())
				}
			}
		}, func(err error) {
			errs = append(errs, fmt.Errorf("service.versions[%d] %q: %w", i, v.Name, err))
		})
		out.Service.Versions[i] = v
		if len(marked) > 0 {
			slices.Sort(marked)
			out.Unhealthy[v.Name] = slices.Compact(marked)
		}
	}
	if len(errs) > 0 {
		return translate.Desired{}, fmt.Errorf("resolve endpoints of service %q: %w", d.Service.Name, errors.Join(errs...))
	}
	return out, nil
}

// resolveVersion resolves eps, telling resolved what each endpoint became.
func resolveVersion(ctx context.Context, r HostResolver, eps []model.Endpoint, resolved func(from model.Endpoint, to []model.Endpoint), fail func(error)) []model.Endpoint {
	out := make([]model.Endpoint, 0, len(eps))
	seen := map[model.Endpoint]bool{}
	add := func(ep model.Endpoint) {
		if !seen[ep] {
			seen[ep] = true
			out = append(out, ep)
		}
	}
	for _, ep := range eps {
		if _, err := netip.ParseAddr(ep.Host); err == nil {
			add(ep)
			resolved(ep, []model.Endpoint{ep})
			continue
		}
		addrs, err := r.LookupNetIP(ctx, "ip", ep.Host)
		if err != nil {
			fail(fmt.Errorf("resolve %q: %w", ep.Host, err))
			continue
		}
		if len(addrs) == 0 {
			fail(fmt.Errorf("resolve %q: no addresses", ep.Host))
			continue
		}
		ips := make([]netip.Addr, 0, len(addrs))
		for _, a := range addrs {
			ips = append(ips, a.Unmap())
		}
		slices.SortFunc(ips, netip.Addr.Compare)
		to := make([]model.Endpoint, 0, len(ips))
		for _, a := range ips {
			to = append(to, model.Endpoint{Host: a.String(), Port: ep.Port})
			add(to[len(to)-1])
		}
		resolved(ep, to)
	}
	return out
}
