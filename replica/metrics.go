package replica

import "github.com/prometheus/client_golang/prometheus"

var (
	leaderDesc = prometheus.NewDesc("octoroll_leader",
		"1 while this replica leads (decides and writes), 0 while it follows.", nil, nil)
	proxiesDesc = prometheus.NewDesc("octoroll_replica_proxies",
		"Proxies connected to each live replica, as its record in etcd says.", []string{"replica"}, nil)
)

// Collector exports octoroll_leader and octoroll_replica_proxies.
func (r *Replica) Collector() prometheus.Collector { return collector{r} }

type collector struct{ r *Replica }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- leaderDesc
	ch <- proxiesDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	if c.r.Leading() {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, v)
	for _, p := range c.r.Replicas() {
		ch <- prometheus.MustNewConstMetric(proxiesDesc, prometheus.GaugeValue, float64(p.Proxies), p.ID)
	}
}
