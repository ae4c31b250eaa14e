package controller

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// TestNewRefusesWhatTranslationRefuses: every input that translation (or the split
// itself) cannot serve is refused when the rollout is created, as an invalid spec
// naming the field.
func TestNewRefusesWhatTranslationRefuses(t *testing.T) {
	newVersion := func(version string, endpoints ...string) func(*Spec) {
		return func(s *Spec) { s.Canary = Canary{Version: version, Endpoints: endpoints} }
	}
	for _, c := range []struct {
		name string
		mut  func(*Spec)
		want string
	}{
		{"separator in version", newVersion("v|2", "10.0.3.1:8080"), `canary.version: "v|2" is not a valid name: '|' is reserved`},
		{"space in version", newVersion("v2 x", "10.0.3.1:8080"), `canary.version: "v2 x" is not a valid name`},
		{"leading dash", newVersion("-v9", "10.0.3.1:8080"), `canary.version: "-v9" is not a valid name: must start and end`},
		{"slash in version", newVersion("a/b", "10.0.3.1:8080"), `canary.version: "a/b" is not a valid name`},
		{"non-ASCII version", newVersion("v☃", "10.0.3.1:8080"), `canary.version: "v☃" is not a valid name`},
		{"upper-case version", newVersion("V3", "10.0.3.1:8080"), `canary.version: "V3" is not a valid name`},
		{"bad stable", func(s *Spec) { s.Stable = "v|1" }, `stable: "v|1" is not a valid name`},
		{"bad service", func(s *Spec) { s.Service = "check|out" }, `service: "check|out" is not a valid name`},
		{"pin header flag", func(s *Spec) {
			s.Release.Type = Breaking
			s.Flag = &MatchSpec{Header: "x-octoroll-pin", Value: "v3"}
		}, `flag.header: "x-octoroll-pin" is reserved`},
		{"pin header flag, other case", func(s *Spec) {
			s.Release.Type = Breaking
			s.Flag = &MatchSpec{Header: "X-Octoroll-Pin", Value: "v3"}
		}, `flag.header: "X-Octoroll-Pin" is reserved`},
		{"grpc header in a stage", func(s *Spec) {
			s.Stages = []StageSpec{{Weight: 0, MinWindow: Duration(60e9), Match: &MatchSpec{Header: "grpc-timeout", Value: "1"}}}
		}, `stages[0].match.header: "grpc-timeout" is reserved`},
		{"header with a space", func(s *Spec) {
			s.Release.Type = Breaking
			s.Flag = &MatchSpec{Header: "x canary", Value: "1"}
		}, `flag.header: "x canary" is not a valid header name`},
		{"cookie value with ;", func(s *Spec) {
			s.Release.Type = Breaking
			s.Flag = &MatchSpec{Cookie: "canary", Value: "a;b"}
		}, `flag.value: "a;b" is not a valid cookie value`},
		{"canary endpoint of the stable version", newVersion("v3", "10.0.3.1:8080", "10.0.0.2:8080"),
			`canary.endpoints[1]: "10.0.0.2:8080" is an endpoint of the stable version "v1"`},
		{"duplicate endpoint", newVersion("v3", "10.0.3.1:8080", "10.0.3.1:8080"),
			`canary.endpoints[1]: "10.0.3.1:8080": duplicate endpoint`},
		{"duplicate endpoint, other case", newVersion("v3", "canary.internal:8080", "Canary.Internal:8080"),
			`canary.endpoints[1]: "Canary.Internal:8080": duplicate endpoint`},
		{"zone with a space", func(s *Spec) { s.Canary = Canary{Version: "v3", Endpoints: []string{"10.0.3.1:8080"}, Zone: "eu west"} },
			`canary.zone: "eu west" is not a valid zone`},
		{"zone with the separator", func(s *Spec) { s.Canary = Canary{Version: "v3", Endpoints: []string{"10.0.3.1:8080"}, Zone: "eu|west"} },
			`canary.zone: "eu|west" is not a valid zone`},
		{"NaN threshold", func(s *Spec) { s.Thresholds.PauseErrorRatePP = math.NaN() }, "thresholds.pauseErrorRatePP: NaN: must be a finite number"},
		{"Inf threshold", func(s *Spec) { s.Thresholds.RollbackLatencyRatio = math.Inf(1) }, "thresholds.rollbackLatencyRatio: +Inf: must be a finite number"},
		{"NaN confidence", func(s *Spec) { s.Thresholds.Confidence = math.NaN() }, "thresholds.confidence: NaN: must be a finite number"},
		{"NaN stage threshold", func(s *Spec) {
			s.Stages = []StageSpec{{Percent: 5, MinWindow: Duration(60e9), Thresholds: Thresholds{GrossFactor: math.Inf(-1)}}}
		}, "stages[0].thresholds.grossFactor: -Inf: must be a finite number"},
		{"NaN percent", func(s *Spec) { s.Stages = []StageSpec{{Percent: math.NaN(), MinWindow: Duration(60e9)}} },
			"stages[0].percent: NaN: must be a finite number"},
		{"Inf check bound", func(s *Spec) { s.CustomChecks = []Check{{Name: "q", Query: "x", Max: ptr(math.Inf(1))}} },
			"customChecks[0].max: +Inf: must be a finite number"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := testSpec(Minor)
			c.mut(&spec)
			_, _, err := New(t0, "r1", spec, testService())
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v\nwant an invalid spec naming %s", err, c.want)
			}
		})
	}
	// The same rules accept what translates.
	spec := testSpec(Breaking)
	spec.Canary = Canary{Version: "v3-rc", Endpoints: []string{"10.0.3.1:8080", "canary.internal:8080"}, Zone: "eu-west-1a"}
	spec.Flag = &MatchSpec{Cookie: "canary", Value: "always"}
	if _, _, err := New(t0, "r1", spec, testService()); err != nil {
		t.Errorf("valid spec refused: %v", err)
	}
}
