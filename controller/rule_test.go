package controller

import (
	"slices"
	"testing"
)

func TestRules(t *testing.T) {
	for _, tc := range []struct {
		reason string
		want   []string
	}{
		{"error rate more than 0.1 pp above baseline at 0.95 confidence: canary 2.000% (20/1000) vs stable 0.500% (5/1000), difference +1.500 pp, interval [+0.600, +2.400] pp",
			[]string{RuleErrorRate}},
		{"error rate more than 1 pp above baseline for 5m0s: canary 2.000% (6000/300000) vs stable 0.500% (1500/300000)", []string{RuleErrorRate}},
		{"error rate grossly above baseline (≥ 5 pp at 0.999 confidence): canary …", []string{RuleErrorRate}},
		{"P99 latency more than ×1.1 baseline: canary P99 130ms vs stable 100ms (×1.300)", []string{RuleLatency}},
		{"P99 latency more than ×1.25 baseline: …; error rate more than 0.1 pp above baseline at 0.95 confidence: …",
			[]string{RuleLatency, RuleErrorRate}},
		{"1 of 3 canary endpoints unhealthy", []string{RuleCanaryHealth}},
		{"all 2 canary endpoints unhealthy", []string{RuleCanaryHealth}},
		{"2 of 4 stable endpoints unhealthy", []string{RuleStableHealth}},
		{"critical alerts firing: HighErrorRate", []string{RuleAlerts}},
		{`check "orders-consistent" failed: 3 orders lost; smoke check "login" failed`, []string{`check "orders-consistent"`, `smoke check "login"`}},
		{"proxies did not ACK weights generation 3 within 1m0s; stragglers: envoy-2", []string{RuleACK}},
		{"metrics source failing on 3 consecutive checks: connection refused", []string{RuleMetricsSource}},
		{"inconclusive for 10m0s: canary served 3 requests < minRequests 100; P99 latency unknown over 30s", []string{RuleInconclusive}},
		{"stage canary not conclusive within maxWindow 1h0m0s (10m0s of 15m0s monitored clean)", []string{RuleMaxWindow}},
		{"aborted by bob: bad build", nil},
	} {
		if got := Rules(tc.reason); !slices.Equal(got, tc.want) {
			t.Errorf("Rules(%q) = %q, want %q", tc.reason, got, tc.want)
		}
	}
}
