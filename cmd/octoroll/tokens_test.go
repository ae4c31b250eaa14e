package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNamedTokensWithTheBinary starts the real binary with a tokens file and drives it
// with the CLI, whose token comes from OCTOROLL_ADMIN_TOKEN_FILE: an operator may pause
// but not start, the recorded actor is the token's name, and the status says how many
// tokens are in force.
func TestNamedTokensWithTheBinary(t *testing.T) {
	dir := t.TempDir()
	catalogPath := filepath.Join(dir, "catalog.yaml")
	tokensPath := filepath.Join(dir, "tokens.json")
	spec := filepath.Join(dir, "spec.yaml")
	opTok, adminTok := filepath.Join(dir, "op.token"), filepath.Join(dir, "admin.token")
	for p, s := range map[string]string{
		catalogPath: twoVersions,
		tokensPath: `{"tokens":[{"name":"ops-bob","role":"operator","token":"operator-token-0123456789"},
			{"name":"alice","role":"admin","token":"admin-token-0123456789abc"}]}`,
		spec: "service: checkout\nrelease: {type: minor, summary: faster, rollbackPlan: weights back to v1}\n" +
			"canary: {version: v2}\nwaivers: [{item: smokeTests, by: alice, reason: token test}]\n",
		opTok:    "operator-token-0123456789\n",
		adminTok: "admin-token-0123456789abc\n",
	} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := startServe(t, catalogPath, "--admin-tokens-file", tokensPath)
	t.Setenv("OCTOROLL_ACTOR", "mallory")
	t.Setenv("OCTOROLL_ADMIN_TOKEN_FILE", opTok)
	if out, code := d.cli("rollout", "start", "-f", spec); code != 1 || !strings.Contains(out, "forbidden_role") {
		t.Fatalf("operator starts: exit %d, want 1 and forbidden_role\n%s", code, out)
	}
	t.Setenv("OCTOROLL_ADMIN_TOKEN_FILE", adminTok)
	if out, code := d.cli("rollout", "start", "-f", spec); code != 0 {
		t.Fatalf("admin starts: exit %d\n%s", code, out)
	}
	t.Setenv("OCTOROLL_ADMIN_TOKEN_FILE", opTok)
	if out, code := d.cli("pause", "checkout", "--reason", "token test"); code != 0 {
		t.Fatalf("operator pauses: exit %d\n%s", code, out)
	}
	t.Setenv("OCTOROLL_ADMIN_TOKEN_FILE", "")
	if out, code := d.cli("abort", "checkout", "--reason", "no token"); code != 1 || !strings.Contains(out, "unauthorized") {
		t.Fatalf("abort without a token: exit %d, want 1 and unauthorized\n%s", code, out)
	}
	var evs struct {
		Events []struct{ Kind, Actor string }
	}
	if err := json.Unmarshal([]byte(d.get(t, "/api/v1/events?service=checkout&limit=1000")), &evs); err != nil {
		t.Fatal(err)
	}
	actors := map[string]string{}
	for _, e := range evs.Events {
		if e.Actor != "" {
			actors[e.Kind] = e.Actor
		}
	}
	if actors["created"] != "alice (note: mallory)" || actors["paused"] != "ops-bob (note: mallory)" {
		t.Errorf("actors %v, want alice and ops-bob with mallory as a note", actors)
	}
	var st struct{ Auth struct{ Tokens int } }
	if err := json.Unmarshal([]byte(d.get(t, "/api/v1/status")), &st); err != nil || st.Auth.Tokens != 2 {
		t.Errorf("status auth: %+v %v", st.Auth, err)
	}
}
