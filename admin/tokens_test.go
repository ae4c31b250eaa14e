package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/admin/api"
)

const (
	viewerTok   = "viewer-token-0123456789"
	operatorTok = "operator-token-0123456789"
	adminTok    = "admin-token-0123456789abc"
)

func sha(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(h[:])
}

// tokensYAML has one token per role; the admin's is given as its hash.
var tokensYAML = `tokens:
  - {name: vera, role: viewer, token: ` + viewerTok + `}
  - {name: ops-bob, role: operator, token: ` + operatorTok + `}
  - {name: alice, role: admin, tokenHash: "` + sha(adminTok) + `"}
`

func TestParseTokens(t *testing.T) {
	if set, err := ParseTokens([]byte(tokensYAML)); err != nil || len(set) != 3 {
		t.Fatalf("good YAML: %v (%d tokens)", err, len(set))
	}
	js := `{"tokens":[{"name":"ci","role":"operator","token":"` + operatorTok + `"}]}`
	if set, err := ParseTokens([]byte(js)); err != nil || len(set) != 1 {
		t.Fatalf("good JSON: %v", err)
	}
	for _, c := range []struct{ name, doc, want string }{
		{"empty", ``, "document"},
		{"no tokens", `tokens: []`, "at least one token"},
		{"unknown field", "tokens:\n  - {name: a, role: admin, token: " + adminTok + ", secret: x}", "line 2: unknown field"},
		{"not a list", "tokens: " + adminTok, "line 1: not a tokens document"},
		{"no name", "tokens:\n  - {role: admin, token: " + adminTok + "}", "tokens[0].name: required"},
		{"bad name", "tokens:\n  - {name: 'a b', role: admin, token: " + adminTok + "}", "tokens[0].name"},
		{"long name", "tokens:\n  - {name: " + strings.Repeat("a", 200) + ", role: admin, token: " + adminTok + "}", "tokens[0].name: 200 bytes, at most 128"},
		{"duplicate name", "tokens:\n  - {name: a, role: admin, token: " + adminTok + "}\n  - {name: a, role: viewer, token: " + viewerTok + "}", `tokens[1].name: "a" given twice`},
		{"bad role", "tokens:\n  - {name: a, role: root, token: " + adminTok + "}", `tokens[0].role: "root"`},
		{"both", "tokens:\n  - {name: a, role: admin, token: " + adminTok + ", tokenHash: '" + sha(adminTok) + "'}", "exactly one of token and tokenHash"},
		{"neither", "tokens:\n  - {name: a, role: admin}", "exactly one of token and tokenHash"},
		{"short", "tokens:\n  - {name: a, role: admin, token: short-secret}", "tokens[0].token: shorter than 16"},
		{"bad hash", "tokens:\n  - {name: a, role: admin, tokenHash: 'md5:abc'}", "tokens[0].tokenHash"},
		{"same token twice", "tokens:\n  - {name: a, role: admin, token: " + adminTok + "}\n  - {name: b, role: viewer, tokenHash: '" + sha(adminTok) + "'}", "tokens[1]: the same token as a"},
	} {
		_, err := ParseTokens([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
			continue
		}
		for _, secret := range []string{adminTok, viewerTok, "short-secret"} {
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[:8]) {
				t.Errorf("%s: error %q shows a token", c.name, err)
			}
		}
	}
}

// TestTokenRoles drives the API with a token per role: what each may do, the actor
// recorded, X-Octoroll-Actor only as a note, and reads that need a token.
func TestTokenRoles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(path, []byte(tokensYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens(TokenSource{File: path, Single: "single-admin-token"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	fb := newFakeBackend()
	a := New(zaptest.NewLogger(t), Options{Backend: fb, Addr: "0.0.0.0:8080", Tokens: tokens, ReadTokenRequired: true})
	f := &fixture{srv: newRecordingServer(t, a.Handler()).Server, admin: a}
	post := func(tok, path, actor string) resp {
		h := map[string]string{}
		if actor != "" {
			h[api.ActorHeader] = actor
		}
		return f.do(t, req{method: "POST", path: path, body: `{"reason":"role test"}`, token: ptr(tok), header: h})
	}
	const svc = "/api/v1/services/checkout/"
	expect(t, "viewer pauses", post(viewerTok, svc+"pause", ""), 403, api.CodeForbiddenRole)
	expect(t, "operator pauses", post(operatorTok, svc+"pause", "mallory"), 200, "")
	expect(t, "operator promotes", post(operatorTok, svc+"promote", ""), 403, api.CodeForbiddenRole)
	expect(t, "operator reports a check", f.do(t, req{method: "POST", path: svc + "checks", body: `{"name":"smoke","passed":true}`, token: ptr(operatorTok)}), 200, "")
	expect(t, "operator starts", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: testSpecJSON, token: ptr(operatorTok)}), 403, api.CodeForbiddenRole)
	expect(t, "admin resumes", post(adminTok, svc+"resume", "alice"), 200, "")
	expect(t, "admin promotes", post(adminTok, svc+"promote", ""), 200, "")
	expect(t, "single token", post("single-admin-token", svc+"pause", ""), 200, "")
	expect(t, "wrong token", post("wrong-token-0123456789", svc+"pause", ""), 401, api.CodeUnauthorized)
	expect(t, "no token", post("", svc+"pause", ""), 401, api.CodeUnauthorized)
	expect(t, "long actor", post(adminTok, svc+"pause", strings.Repeat("x", 300)), 400, api.CodeBadRequest)
	var actors []string
	for _, c := range fb.Commands() {
		actors = append(actors, string(c.Kind)+":"+c.Actor)
	}
	want := []string{"pause:ops-bob (note: mallory)", "resume:alice", "promote:alice", "pause:admin"}
	if strings.Join(actors, ",") != strings.Join(want, ",") {
		t.Errorf("actors %v, want %v", actors, want)
	}

	// Reads need a token of any role; probes do not.
	expect(t, "read without token", f.do(t, req{method: "GET", path: "/api/v1/services", token: ptr("")}), 401, api.CodeUnauthorized)
	expect(t, "page without token", f.do(t, req{method: "GET", path: "/", token: ptr("")}), 401, api.CodeUnauthorized)
	expect(t, "metrics without token", f.do(t, req{method: "GET", path: "/metrics", token: ptr("")}), 401, api.CodeUnauthorized)
	expect(t, "read with a wrong token", f.do(t, req{method: "GET", path: "/api/v1/services", token: ptr("nope")}), 401, api.CodeUnauthorized)
	expect(t, "read as viewer", f.do(t, req{method: "GET", path: "/api/v1/services", token: ptr(viewerTok)}), 200, "")
	expect(t, "healthz", f.do(t, req{method: "GET", path: "/healthz", token: ptr("")}), 200, "")
	st := decode[api.StatusResponse](t, f.do(t, req{method: "GET", path: "/api/v1/status", token: ptr(viewerTok)}))
	if st.Auth == nil || st.Auth.Tokens != 4 || !st.Auth.ReadsNeedToken || st.Auth.Failing {
		t.Errorf("status auth %+v", st.Auth)
	}
}

// TestTokensReload: a changed file takes effect on reload; a bad one keeps the last
// good tokens and says so; Run notices a change by itself.
func TestTokensReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write(tokensYAML)
	tokens, err := NewTokens(TokenSource{File: path}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	role := func(tok string) Role {
		id, ok := tokens.Lookup(tok)
		if !ok {
			return RoleNone
		}
		return id.Role
	}
	if role(operatorTok) != RoleOperator || role(adminTok) != RoleAdmin || role("") != RoleNone {
		t.Fatal("initial tokens not in force")
	}
	// Demote bob, drop vera.
	write("tokens:\n  - {name: ops-bob, role: viewer, token: " + operatorTok + "}\n  - {name: alice, role: admin, tokenHash: '" + sha(adminTok) + "'}\n")
	if err := tokens.Reload(); err != nil {
		t.Fatal(err)
	}
	if role(operatorTok) != RoleViewer || role(viewerTok) != RoleNone {
		t.Errorf("after reload: bob %s, vera %s", role(operatorTok), role(viewerTok))
	}
	// A bad file keeps the last good tokens.
	write("tokens:\n  - {name: ops-bob, role: superuser, token: " + operatorTok + "}\n")
	if err := tokens.Reload(); err == nil {
		t.Fatal("bad file reloaded")
	}
	if st := tokens.Status(); !st.Failing || !strings.Contains(st.LastError, "tokens[0].role") || st.Tokens != 2 {
		t.Errorf("status after a bad file: %+v", st)
	}
	if role(adminTok) != RoleAdmin || role(operatorTok) != RoleViewer {
		t.Error("the last good tokens are not in force after a bad file")
	}
	// Run picks up a fixed file.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tokens.Run(ctx, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	write(tokensYAML)
	deadline := time.Now().Add(5 * time.Second)
	for role(viewerTok) != RoleViewer {
		if time.Now().After(deadline) {
			t.Fatal("Run did not reload the fixed file within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := tokens.Status(); st.Failing || st.Tokens != 3 {
		t.Errorf("status after the fix: %+v", st)
	}
}
