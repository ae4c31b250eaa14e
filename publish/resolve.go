package publish

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/translate"
)

// HostResolver resolves a DNS name to IP addresses. *net.Resolver satisfies it.
type HostResolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ResolveEndpoints returns a copy of d in which every endpoint host that is a DNS name is
// replaced by the IP addresses it resolves to (same port, sorted, duplicates dropped),
// and every SRV endpoint by an address and port per target. Translation needs IP
// addresses: Envoy rejects DNS names in EDS socket addresses, and gRPC-Go would dial a
// name as one endpoint, hiding the addresses behind it from its load balancer. A name
// marked in d.Unhealthy marks every address it resolves to (a health check probed the
// name), an address marked there marks that address. It calls out, through r, which is
// why it is not part of the pure translate package; call it before translating and
// again when the names may have moved. d is not modified.
func ResolveEndpoints(ctx context.Context, r HostResolver, d translate.Desired) (translate.Desired, error) {
	return resolveDesired(d, func(ep model.Endpoint) ([]model.Endpoint, error) {
		rec, err := lookupRecords(ctx, r, NameOf(ep))
		if err != nil {
			return nil, fmt.Errorf("resolve %q: %w", NameOf(ep), err)
		}
		return endpointsOf(ep, rec.Addrs), nil
	})
}

// NameOf is the name the DNS cache knows ep by: its host for a DNS name, "srv:" and the
// name for an SRV endpoint (model.Endpoint.String's form), "" for an IP address.
func NameOf(ep model.Endpoint) string {
	switch {
	case ep.SRV:
		return ep.String()
	case ep.IsIP() || ep.Host == "":
		return ""
	}
	return ep.Host
}

// lookupRecords looks name (NameOf's form) up through r: with TTLs when r is a
// RecordResolver, else addresses only (and no SRV records).
func lookupRecords(ctx context.Context, r HostResolver, name string) (Records, error) {
	srv, isSRV := strings.CutPrefix(name, model.SRVPrefix)
	rr, hasTTL := r.(RecordResolver)
	var rec Records
	var err error
	switch {
	case isSRV && hasTTL:
		rec, err = rr.LookupSRV(ctx, srv)
	case isSRV:
		err = errors.New("the resolver does not look up SRV records")
	case hasTTL:
		rec, err = rr.LookupAddrs(ctx, name)
	default:
		var addrs []netip.Addr
		addrs, err = r.LookupNetIP(ctx, "ip", name)
		rec.TTL = NoTTL
		for _, a := range addrs {
			rec.Addrs = append(rec.Addrs, netip.AddrPortFrom(a.Unmap(), 0))
		}
		slices.SortFunc(rec.Addrs, netip.AddrPort.Compare)
		rec.Addrs = slices.Compact(rec.Addrs)
	}
	if err == nil && len(rec.Addrs) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		return Records{}, err
	}
	return rec, nil
}

// endpointsOf is what ep stands for given its name's addresses: each address with ep's
// port, or (SRV) with its own.
func endpointsOf(ep model.Endpoint, addrs []netip.AddrPort) []model.Endpoint {
	out := make([]model.Endpoint, 0, len(addrs))
	for _, a := range addrs {
		port := ep.Port
		if ep.SRV {
			port = uint32(a.Port())
		}
		out = append(out, model.Endpoint{Host: a.Addr().String(), Port: port})
	}
	return out
}

// resolveDesired is ResolveEndpoints through expand, which says what a DNS or SRV
// endpoint stands for.
func resolveDesired(d translate.Desired, expand func(model.Endpoint) ([]model.Endpoint, error)) (translate.Desired, error) {
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
		v.Endpoints = resolveVersion(v.Endpoints, expand, func(from model.Endpoint, to []model.Endpoint) {
			for _, ep := range to {
				if down[from.String()] || down[ep.String()] {
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
func resolveVersion(eps []model.Endpoint, expand func(model.Endpoint) ([]model.Endpoint, error), resolved func(from model.Endpoint, to []model.Endpoint), fail func(error)) []model.Endpoint {
	out := make([]model.Endpoint, 0, len(eps))
	seen := map[model.Endpoint]bool{}
	add := func(ep model.Endpoint) {
		if !seen[ep] {
			seen[ep] = true
			out = append(out, ep)
		}
	}
	for _, ep := range eps {
		if NameOf(ep) == "" {
			add(ep)
			resolved(ep, []model.Endpoint{ep})
			continue
		}
		to, err := expand(ep)
		if err != nil {
			fail(err)
			continue
		}
		for _, e := range to {
			add(e)
		}
		resolved(ep, to)
	}
	return out
}
