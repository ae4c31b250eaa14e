package admin

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/octoacme/octoroll/admin/api"
)

// TestStartRefusesAtTheDoor: every start request whose rollout translation would refuse
// (or whose split cannot work) is answered 400 with a JSON error naming the field,
// against the real runner, and nothing is stored: no rollout, no event, and the
// service keeps serving its known-good version.
func TestStartRefusesAtTheDoor(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	// spec is testSpecJSON with its canary replaced and extra fields added.
	spec := func(canary string, extra string) string {
		s := strings.Replace(testSpecJSON, `"canary":{"version":"v2"}`, `"canary":`+canary, 1)
		if extra != "" {
			s = strings.Replace(s, `"smokeChecks"`, extra+`,"smokeChecks"`, 1)
		}
		return s
	}
	newVersion := func(version string) string {
		b, _ := json.Marshal(version)
		return spec(`{"version":`+string(b)+`,"endpoints":["127.0.0.1:9100"]}`, "")
	}
	yamlSpec := func(extra string) string { return testSpecYAML + extra }
	for _, c := range []struct {
		name, body, ctype string
		code, want        string
	}{
		{"version with the separator", newVersion("v|2"), "", api.CodeInvalidSpec, `canary.version: \"v|2\" is not a valid name`},
		{"version with a space", newVersion("v2 x"), "", api.CodeInvalidSpec, `canary.version: \"v2 x\" is not a valid name`},
		{"version with a leading dash", newVersion("-v9"), "", api.CodeInvalidSpec, `canary.version: \"-v9\" is not a valid name`},
		{"version with a slash", newVersion("a/b"), "", api.CodeInvalidSpec, `canary.version: \"a/b\" is not a valid name`},
		{"non-ASCII version", newVersion("v☃"), "", api.CodeInvalidSpec, `canary.version: \"v☃\" is not a valid name`},
		{"unresolvable endpoint", spec(`{"version":"v3","endpoints":["nonexistent.invalid:8080"]}`, ""), "",
			api.CodeInvalidSpec, `canary.endpoints[0]: \"nonexistent.invalid:8080\" does not resolve`},
		{"pin header flag", strings.Replace(spec(`{"version":"v2"}`, `"flag":{"header":"x-octoroll-pin","value":"1"}`), `"minor"`, `"breaking"`, 1), "",
			api.CodeInvalidSpec, `flag.header: \"x-octoroll-pin\" is reserved`},
		{"endpoint of the stable version", spec(`{"version":"v3","endpoints":["127.0.0.1:9100","127.0.0.1:9001"]}`, ""), "",
			api.CodeInvalidSpec, `canary.endpoints[1]: \"127.0.0.1:9001\" is an endpoint of the stable version \"v1\"`},
		{"duplicate endpoints", spec(`{"version":"v3","endpoints":["127.0.0.1:9100","127.0.0.1:9100"]}`, ""), "",
			api.CodeInvalidSpec, `canary.endpoints[1]: \"127.0.0.1:9100\": duplicate endpoint`},
		{"zone with a space", spec(`{"version":"v3","endpoints":["127.0.0.1:9100"],"zone":"eu west"}`, ""), "",
			api.CodeInvalidSpec, `canary.zone: \"eu west\" is not a valid zone`},
		{"zone with the separator", spec(`{"version":"v3","endpoints":["127.0.0.1:9100"],"zone":"a|b"}`, ""), "",
			api.CodeInvalidSpec, `canary.zone: \"a|b\" is not a valid zone`},
		{"NaN threshold", yamlSpec("thresholds:\n  pauseErrorRatePP: .nan\n"), "application/yaml",
			api.CodeInvalidSpec, "thresholds.pauseErrorRatePP: NaN: must be a finite number"},
		{"infinite threshold", yamlSpec("thresholds:\n  rollbackLatencyRatio: .inf\n"), "application/yaml",
			api.CodeInvalidSpec, "thresholds.rollbackLatencyRatio: +Inf: must be a finite number"},
		{"infinite stage percent", yamlSpec("stages:\n  - percent: -.inf\n    minWindow: 1m\n"), "application/yaml",
			api.CodeInvalidSpec, "stages[0].percent: -Inf: must be a finite number"},
		{"null body", "null", "", api.CodeBadRequest, "spec:1:1: the file is empty"},
		// Decoded by octoroll lint's decoder: line:column and the field.
		{"misspelt field in YAML", yamlSpec("chekInterval: 30s\n"), "application/yaml", api.CodeBadRequest, `spec:10:1: chekInterval: unknown field \"chekInterval\"`},
		{"duration without a unit in YAML", yamlSpec("stages:\n  - percent: 5\n    minWindow: 30\n"), "application/yaml", api.CodeBadRequest, "spec:12:16: stages[0].minWindow: 30: a duration needs a unit, such as 30s"},
		{"misspelt field in JSON", spec(`{"version":"v2"}`, `"chekInterval":"30s"`), "", api.CodeBadRequest, `spec:2:68: chekInterval: unknown field \"chekInterval\"`},
		{"duration without a unit in JSON", spec(`{"version":"v2"}`, `"stages":[{"percent":5,"minWindow":30}]`), "", api.CodeBadRequest, "spec:2:103: stages[0].minWindow: 30: a duration needs a unit, such as 30s"},
		{"not JSON", `{"service":`, "", api.CodeBadRequest, "malformed JSON body"},
		{"no service", strings.Replace(testSpecJSON, `"service":"checkout",`, "", 1), "", api.CodeInvalidSpec, "service: required"},
		{"service with the separator", strings.Replace(testSpecJSON, `"checkout"`, `"check|out"`, 1), "",
			api.CodeInvalidSpec, `service: \"check|out\" is not a valid name`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: c.body, ctype: c.ctype})
			expect(t, c.name, r, 400, c.code)
			// The JSON error names the field (quotes escaped as JSON writes them).
			if !bytes.Contains(r.body, []byte(c.want)) {
				t.Errorf("error %s does not name %s", r.body, c.want)
			}
		})
	}
	if rs := decode[api.RolloutsResponse](t, f.do(t, req{method: "GET", path: "/api/v1/rollouts"})); len(rs.Rollouts) != 0 {
		t.Fatalf("rollouts after refused starts: %+v", rs.Rollouts)
	}
	if evs := decode[api.EventsResponse](t, f.do(t, req{method: "GET", path: "/api/v1/events"})); len(evs.Events) != 0 {
		t.Fatalf("events after refused starts: %+v", evs.Events)
	}
	det := decode[api.ServiceDetail](t, f.do(t, req{method: "GET", path: "/api/v1/services/checkout"}))
	if det.Active != nil || det.Weights["v1"] != 10000 || len(det.Catalog.Versions) != 2 {
		t.Fatalf("checkout after refused starts: active %v, weights %v, versions %d", det.Active, det.Weights, len(det.Catalog.Versions))
	}
}

// TestReportUnknownCheck: a result for a check the active rollout does not declare is
// refused with 400, naming the rollout's reported checks, and is not recorded.
func TestReportUnknownCheck(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	body := strings.Replace(testSpecJSON, `"smokeChecks":["smoke"]`,
		`"smokeChecks":["smoke"],"customChecks":[{"name":"orders","onFail":"rollback"},{"name":"queue","query":"q","max":1}]`, 1)
	expect(t, "start", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: body}), 201, "")
	r := f.do(t, req{method: "POST", path: "/api/v1/services/checkout/checks", body: `{"name":"smok","passed":false}`})
	expect(t, "unknown check", r, 400, api.CodeUnknownCheck)
	var e api.Error
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`name: "smok" is not a reported check`, "orders, smoke"} {
		if !strings.Contains(e.Error, want) {
			t.Errorf("error %q does not say %q", e.Error, want)
		}
	}
	// A query check is evaluated by octoroll, not reported.
	expect(t, "query check", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/checks", body: `{"name":"queue","passed":true}`}),
		400, api.CodeUnknownCheck)
	expect(t, "known check", f.do(t, req{method: "POST", path: "/api/v1/services/checkout/checks", body: `{"name":"orders","passed":true}`}), 200, "")
}
