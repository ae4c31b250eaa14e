package controller

import "strings"

// Rule kinds name the rule behind a pause or rollback (see Rules).
const (
	RuleErrorRate     = "error_rate"
	RuleLatency       = "latency"
	RuleCanaryHealth  = "canary_health"
	RuleStableHealth  = "stable_health"
	RuleAlerts        = "alerts"
	RuleACK           = "ack"
	RuleMetricsSource = "metrics_source"
	RuleInconclusive  = "inconclusive"
	RuleMaxWindow     = "max_window"
)

// ruleOf maps how the engine words a finding (see judge.go and engine.go) to its rule.
var ruleOf = []struct{ match, rule string }{
	{"error rate ", RuleErrorRate},
	{"P99 latency ", RuleLatency},
	{" canary endpoints unhealthy", RuleCanaryHealth},
	{" stable endpoints unhealthy", RuleStableHealth},
	{"critical alerts firing", RuleAlerts},
	{"proxies did not ACK", RuleACK},
	{"proxies rejected", RuleACK},
	{"metrics source failing", RuleMetricsSource},
	{" not conclusive within maxWindow", RuleMaxWindow},
}

// Rules returns the rules a pause's or rollback's reason names, in order, without
// repeats: a reason joins the findings of one check with "; ". A check's own finding
// is its rule (`check "orders-consistent"`, `smoke check "login"`), so that two
// checks are two rules. A reason the engine did not word (an operator's) names none.
func Rules(reason string) []string {
	var out []string
	add := func(r string) {
		for _, have := range out {
			if have == r {
				return
			}
		}
		out = append(out, r)
	}
	for part := range strings.SplitSeq(reason, "; ") {
		if strings.HasPrefix(part, "inconclusive for ") {
			// The rest lists what was inconclusive, with "; " too: none of it breached.
			add(RuleInconclusive)
			break
		}
		if name, _, ok := strings.Cut(part, " failed"); ok && (strings.HasPrefix(name, `check "`) || strings.HasPrefix(name, `smoke check "`)) {
			add(name)
			continue
		}
		for _, m := range ruleOf {
			if strings.HasPrefix(part, m.match) || (strings.HasPrefix(m.match, " ") && strings.Contains(part, m.match)) {
				add(m.rule)
				break
			}
		}
	}
	return out
}
