package admin

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/model"
)

// TestFieldLengths: a field over its limit is answered 400 naming the field; a value
// at the limit is taken.
func TestFieldLengths(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	long := func(n int) string { return strings.Repeat("x", n) }
	body := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	specWith := func(field, v string) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(testSpecJSON), &m); err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(field, ".")
		if len(parts) == 2 {
			m[parts[0]].(map[string]any)[parts[1]] = v
		} else {
			m["waivers"] = []map[string]string{{"item": "smokeChecks", "by": "alice", "reason": "ok", parts[0]: v}}
		}
		return body(m)
	}
	refused := func(name string, r resp, code, field string) {
		t.Helper()
		expect(t, name, r, 400, code)
		if !strings.Contains(string(r.body), field+":") {
			t.Errorf("%s: error does not name %s: %s", name, field, r.body)
		}
	}
	refused("release.summary", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: specWith("release.summary", long(model.MaxTextLen+1))}),
		api.CodeInvalidSpec, "release.summary")
	refused("release.name", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: specWith("release.name", long(model.MaxLabelLen+1))}),
		api.CodeInvalidSpec, "release.name")
	refused("waiver reason", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: specWith("reason", long(model.MaxReasonLen+1))}),
		api.CodeInvalidSpec, "waivers[0].reason")
	// At the limits, the rollout starts.
	expect(t, "at the limits", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: specWith("release.summary", long(model.MaxTextLen))}), 201, "")

	refused("900 KB reason", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/pause", body: body(map[string]string{"reason": long(900 << 10)})}),
		api.CodeBadRequest, "reason")
	refused("reason over the limit", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/pause", body: body(map[string]string{"reason": long(model.MaxReasonLen + 1)})}),
		api.CodeBadRequest, "reason")
	refused("check name", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/checks", body: body(map[string]any{"name": long(model.MaxLabelLen + 1), "passed": true})}),
		api.CodeBadRequest, "name")
	refused("check detail", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/checks", body: body(map[string]any{"name": "smoke", "passed": true, "detail": long(model.MaxTextLen + 1)})}),
		api.CodeBadRequest, "detail")
	refused("actor", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/pause", body: "{}", header: map[string]string{api.ActorHeader: long(model.MaxActorLen + 1)}}),
		api.CodeBadRequest, api.ActorHeader)
	expect(t, "reason at the limit", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/pause", body: body(map[string]string{"reason": long(model.MaxReasonLen)})}), 200, "")
	expect(t, "body over 1 MiB", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/pause", body: body(map[string]string{"reason": long(MaxBodyBytes)})}), 413, api.CodeTooLarge)
}
