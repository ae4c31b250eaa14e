package admin

import (
	"strings"
	"testing"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// TestAPIFreeze drives the freeze switch through the API against the real runner: a
// freeze needs a reason, shows in /freeze, /status and /services, refuses starts (409
// frozen) unless overridden with a reason, and unfreeze lifts it once.
func TestAPIFreeze(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: "s3cret"})
	actor := map[string]string{api.ActorHeader: "bob"}
	st := decode[api.FreezeStatus](t, f.do(t, req{method: "GET", path: "/api/v1/freeze"}))
	if st.Frozen {
		t.Fatalf("frozen at the start: %+v", st)
	}
	expect(t, "freeze without a reason", f.do(t, req{method: "POST", path: "/api/v1/freeze", body: `{"reason":"  "}`}), 400, api.CodeReasonRequired)
	expect(t, "freeze with a reason over the limit", f.do(t, req{method: "POST", path: "/api/v1/freeze", body: `{"reason":"` + strings.Repeat("x", model.MaxReasonLen+1) + `"}`}), 400, api.CodeBadRequest)
	expect(t, "freeze with an unknown field", f.do(t, req{method: "POST", path: "/api/v1/freeze", body: `{"reason":"x","until":"tomorrow"}`}), 400, api.CodeBadRequest)
	expect(t, "freeze without a token", f.do(t, req{method: "POST", path: "/api/v1/freeze", body: `{"reason":"x"}`, token: ptr("")}), 401, api.CodeUnauthorized)
	r := f.do(t, req{method: "POST", path: "/api/v1/freeze", body: `{"reason":"incident 42"}`, header: actor})
	expect(t, "freeze", r, 200, "")
	if st := decode[api.FreezeStatus](t, r); !st.Frozen || st.Manual == nil || st.Manual.By != "admin (note: bob)" || !strings.Contains(st.Summary, "frozen by admin (note: bob)") {
		t.Fatalf("freeze answer %+v", st)
	}
	status := decode[api.StatusResponse](t, f.do(t, req{method: "GET", path: "/api/v1/status"}))
	if status.Freeze == nil || !status.Freeze.Frozen || status.Freeze.Manual.Reason != "incident 42" {
		t.Fatalf("status freeze %+v", status.Freeze)
	}
	if svcs := decode[api.ServicesResponse](t, f.do(t, req{method: "GET", path: "/api/v1/services"})); svcs.Freeze == nil || !svcs.Freeze.Frozen {
		t.Fatalf("services freeze %+v", svcs.Freeze)
	}
	page := f.do(t, req{method: "GET", path: "/", header: map[string]string{"Accept": "text/html"}})
	if !strings.Contains(string(page.body), `id="freeze-state"`) || !strings.Contains(string(page.body), "incident 42") {
		t.Fatalf("status page shows no freeze")
	}
	expect(t, "start during the freeze", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: testSpecJSON}), 409, api.CodeFrozen)
	r = f.do(t, req{method: "POST", path: "/api/v1/rollouts?overrideFreeze=CVE-2026-1+hotfix", body: testSpecJSON, header: actor})
	expect(t, "start with an override", r, 201, "")
	if d := decode[api.RolloutDetail](t, r); d.Rollout.Spec.OverrideFreeze != "CVE-2026-1 hotfix" || d.Rollout.FreezeOverrides != 1 {
		t.Fatalf("override not recorded: %+v", d.Rollout.Spec.OverrideFreeze)
	}
	evs := decode[api.EventsResponse](t, f.do(t, req{method: "GET", path: "/api/v1/events?kind=freeze_override"}))
	if len(evs.Events) != 1 || evs.Events[0].Actor != "admin (note: bob)" || evs.Events[0].Freeze == nil {
		t.Fatalf("override events %+v", evs.Events)
	}
	// The override is the rollout's: its advances go through the freeze too, recorded.
	r = f.do(t, req{method: "POST", path: "/api/v1/services/checkout/promote", body: `{"force":true}`})
	expect(t, "promote of the overriding rollout", r, 200, "")
	if d := decode[api.RolloutDetail](t, r); d.Rollout.FreezeOverrides != 2 {
		t.Fatalf("%d overrides recorded, want 2", d.Rollout.FreezeOverrides)
	}
	expect(t, "unfreeze", f.do(t, req{method: "POST", path: "/api/v1/unfreeze", header: actor}), 200, "")
	expect(t, "unfreeze again", f.do(t, req{method: "POST", path: "/api/v1/unfreeze"}), 409, api.CodeNotFrozen)
	if st := decode[api.FreezeStatus](t, f.do(t, req{method: "GET", path: "/api/v1/freeze"})); st.Frozen {
		t.Fatalf("still frozen: %+v", st)
	}
}

// TestAPIApprove: approve is an action of a stage with approval: required, recorded
// with the actor; it is refused where nothing waits for one.
func TestAPIApprove(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: "s3cret"})
	expect(t, "approve without a rollout", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/approve"}), 409, api.CodeNoActiveRollout)
	spec := strings.Replace(testSpecJSON, `"smokeChecks"`, `"stages":[{"percent":5,"minWindow":"10m","approval":"required"},{"percent":50,"minWindow":"10m"}],"smokeChecks"`, 1)
	expect(t, "start", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: spec}), 201, "")
	r := f.do(t, req{method: "POST", path: "/api/v1/services/checkout/approve", body: `{"reason":"QA signed off"}`,
		header: map[string]string{api.ActorHeader: "carol"}})
	expect(t, "approve", r, 200, "")
	if d := decode[api.RolloutDetail](t, r); d.Rollout.Progress.Approved == nil || d.Rollout.Progress.Approved.By != "admin (note: carol)" {
		t.Fatalf("approval not recorded: %+v", d.Rollout.Progress.Approved)
	}
	expect(t, "approve twice", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/approve"}), 409, api.CodeInvalidState)
	evs := decode[api.EventsResponse](t, f.do(t, req{method: "GET", path: "/api/v1/events?kind=" + controller.EventApproved}))
	if len(evs.Events) != 1 || evs.Events[0].Actor != "admin (note: carol)" || !strings.Contains(evs.Events[0].Reason, "QA signed off") {
		t.Fatalf("approval events %+v", evs.Events)
	}
	bad := strings.Replace(testSpecJSON, `"smokeChecks"`, `"stages":[{"percent":5,"minWindow":"10m","approval":"maybe"}],"smokeChecks"`, 1)
	expect(t, "start with a bad approval", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: bad}), 400, api.CodeInvalidSpec)
}
