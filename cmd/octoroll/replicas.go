package main

import (
	"context"
	"errors"
	"os"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/replica"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

// stateStore is the state store as serve uses it: bbolt or etcd.
type stateStore interface {
	runner.Store
	Ping() error
	Close() error
}

// openStore opens the configured store. With etcd it also returns the etcd store, on
// which this replica's writes are refused until it is elected.
func openStore(cfg config, log *zap.Logger) (stateStore, *store.Etcd, error) {
	if cfg.Store != "etcd" {
		st, err := store.Open(cfg.StateDir, store.Options{})
		return st, nil, err
	}
	st, err := store.OpenEtcd(store.EtcdOptions{Endpoints: cfg.endpoints(), Prefix: cfg.Etcd.Prefix,
		RequestTimeout: cfg.Etcd.Timeout, Log: log})
	if err != nil {
		return nil, nil, err
	}
	st.Fenced(nil) // a follower until elected
	return st, st, nil
}

// replicaID is the configured replica name, or the host name.
func replicaID(cfg config) string {
	if cfg.Etcd.ReplicaID != "" {
		return cfg.Etcd.ReplicaID
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "octoroll"
}

// clusterXDS is the xds server with the convergence of every replica's proxies.
type clusterXDS struct {
	*xds.Server
	rep *replica.Replica
}

func (c clusterXDS) Convergence(service string) xds.Convergence {
	return c.rep.Convergence(service, c.Server.Convergence(service))
}

func (c clusterXDS) ClusterWarmth(service string, versions ...string) xds.ClusterWarmth {
	return c.rep.ClusterWarmth(service, versions, c.Server.ClusterWarmth(service, versions...))
}

// replicaReady is the readiness of a replica: etcd answers.
func replicaReady(st stateStore, rep *replica.Replica) error {
	if err := st.Ping(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return errors.New("etcd is unreachable: serving the last state, taking no decision")
		}
		return errors.New("etcd is unreachable: serving the last state, taking no decision (" + err.Error() + ")")
	}
	if rep != nil {
		if err := rep.Err(); err != nil {
			return err
		}
	}
	return nil
}

// replicasStatus is the replicas as the status shows them.
func replicasStatus(rep *replica.Replica) func() *api.Replicas {
	return func() *api.Replicas {
		self := rep.Self()
		out := &api.Replicas{Self: self.ID}
		if l, ok := rep.Leader(); ok {
			out.Leader = l.ID
		}
		selfListed := false
		for _, m := range rep.Replicas() {
			r := api.Replica{ID: m.ID, Admin: m.Admin, XDS: m.XDS, Leader: m.ID == out.Leader, Proxies: m.Proxies, Updated: m.Updated}
			if m.ID == self.ID {
				selfListed = true
				r.Leader = rep.Leading()
				if err := rep.Err(); err != nil {
					r.Error = err.Error()
				}
			}
			out.Members = append(out.Members, r)
		}
		if !selfListed {
			// Its record is gone (etcd unreachable beyond its lease): it still serves.
			r := api.Replica{ID: self.ID, Admin: self.Admin, XDS: self.XDS, Error: "its record is not in etcd"}
			if err := rep.Err(); err != nil {
				r.Error = err.Error()
			}
			out.Members = append(out.Members, r)
		}
		return out
	}
}

// replicasFunc is replicasStatus, nil with one replica.
func replicasFunc(rep *replica.Replica) func() *api.Replicas {
	if rep == nil {
		return nil
	}
	return replicasStatus(rep)
}
