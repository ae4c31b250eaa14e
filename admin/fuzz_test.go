package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// decodeTokensForTest decodes a tokens file without the checks of ParseTokens.
func decodeTokensForTest(data []byte, v *tokensFile) error { return yaml.Unmarshal(data, v) }

// plainScheme accepts lower-case letters only, the schemes webhooks use.
func plainScheme(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz") == ""
}

// isPlainWordForTest tells whether model.RedactURL takes s for a word of a URL's
// structure: what it redacts is what model.RedactURL(".../s") hides.
func isPlainWordForTest(s string) bool { return model.RedactURL("http://h/"+s) == "http://h/"+s }

// The fuzz targets drive the admin API's handlers with arbitrary requests. `go test`
// runs their seeds (f.Add and testdata/fuzz); `go test -fuzz FuzzAPIRequest ./admin`
// searches further.

const fuzzToken = "fuzz-admin-token-0123456789"

// FuzzAPIRequest sends one arbitrary request (method, path, Host, Origin, Content-Type,
// actor, token, body) to a server with tokens on a wildcard address. Whatever it is,
// the server answers without a panic or a 500, every error is a JSON api.Error, a
// request with a foreign Host or Origin or without a JSON Content-Type never changes
// anything, and a change needs the token.
func FuzzAPIRequest(f *testing.F) {
	seeds := []struct {
		method, path, host, origin, ctype, actor, token, body string
	}{
		{"GET", "/api/v1/services", "127.0.0.1:8080", "", "", "", "", ""},
		{"GET", "/", "evil.example", "", "", "", "", ""},
		{"POST", "/api/v1/services/checkout/pause", "127.0.0.1:8080", "", "application/json", "bob", fuzzToken, `{"reason":"x"}`},
		{"POST", "/api/v1/services/checkout/abort", "127.0.0.1:8080", "http://127.0.0.1:9", "application/json", "", fuzzToken, `{"reason":"x"}`},
		{"POST", "/api/v1/services/checkout/promote-full", "localhost", "", "text/plain", "", fuzzToken, `{"force":true}`},
		{"POST", "/api/v1/rollouts", "10.0.0.1:8080", "", "application/yaml", "", fuzzToken, testSpecYAML},
		{"POST", "/api/v1/rollouts", "10.0.0.1:8080", "", "application/json", "", fuzzToken, testSpecJSON},
		{"POST", "/api/v1/services/checkout/checks", "[::1]:8080", "", "application/json; charset=utf-8", "", fuzzToken, `{"name":"smoke","passed":true,"detail":"ok"}`},
		{"POST", "/api/v1/services/checkout/pause", "127.0.0.1", "null", "application/json", "", "wrong", `{}`},
		{"GET", "/api/v1/events?after=18446744073709551616&limit=-1", "127.0.0.1", "", "", "", "", ""},
		{"GET", "/api/v1/rollouts?state=%ff&active=maybe", "127.0.0.1", "", "", "", "", ""},
		{"PUT", "/api/v1/rollouts", "127.0.0.1", "", "application/json", "", fuzzToken, "{}"},
		{"POST", "/api/v1/services/checkout/pause", "127.0.0.1", "", "application/json", strings.Repeat("a", 200), fuzzToken, `{"reason":"` + strings.Repeat("r", 2000) + `"}`},
		{"GET", "/api/v1/rollouts/checkout-20250304-1/report", "127.0.0.1", "", "", "", "", ""},
		{"POST", "/api/v1/services/checkout/pause", "127.0.0.1", "", "application/json", "", fuzzToken, `{"reason":"x"} {"reason":"y"}`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.host, s.origin, s.ctype, s.actor, s.token, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, path, host, origin, ctype, actorHdr, token string, body []byte) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		fb := newFakeBackend()
		tokens, _ := NewTokens(TokenSource{Single: fuzzToken}, nil)
		a := New(zap.NewNop(), Options{Backend: fb, Addr: "0.0.0.0:8080", Tokens: tokens,
			Report: func(controller.Rollout, []controller.Event) ([]byte, any) {
				return []byte("# report\n"), map[string]string{}
			}})
		req := httptest.NewRequest(http.MethodGet, "/", bytes.NewReader(body))
		req.Method, req.Host = method, host
		u, err := req.URL.Parse(path)
		if err != nil {
			return
		}
		req.URL, req.RequestURI = u, path
		for k, v := range map[string]string{"Origin": origin, "Content-Type": ctype, api.ActorHeader: actorHdr} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e api.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Code == "" {
				t.Fatalf("%s %s: %d with a body that is no JSON error: %q", method, path, rec.Code, rec.Body)
			}
		}
		cmds := fb.Commands()
		changed := len(cmds) > 0 || (method == http.MethodPost && rec.Code == http.StatusCreated)
		if !changed {
			return
		}
		for _, c := range cmds {
			if strings.ContainsFunc(c.Actor, func(r rune) bool { return !unicode.IsPrint(r) }) {
				t.Fatalf("actor %q recorded with control characters", c.Actor)
			}
		}
		mt := strings.ToLower(strings.TrimSpace(strings.SplitN(ctype, ";", 2)[0]))
		switch {
		case !a.hosts.hostAllowed(host):
			t.Fatalf("a change through a foreign Host %q", host)
		case origin != "" && !a.hosts.originAllowed(origin, host):
			t.Fatalf("a change from a foreign Origin %q", origin)
		case mt != "application/json" && mt != "application/yaml" && mt != "application/x-yaml" && mt != "text/yaml":
			t.Fatalf("a change with Content-Type %q", ctype)
		case strings.TrimSpace(token) != fuzzToken:
			t.Fatalf("a change with token %q", token)
		}
	})
}

// FuzzParseTokens parses arbitrary tokens files: no panic; a file that loads has named
// tokens of known roles; an error never quotes the file's token values.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte(tokensYAML))
	f.Add([]byte(`{"tokens":[{"name":"ci","role":"operator","token":"operator-token-0123456789"}]}`))
	f.Add([]byte("tokens:\n  - {name: a, role: root, token: short}\n"))
	f.Add([]byte("tokens: [{name: x, role: admin, tokenHash: 'sha256:zz'}]"))
	f.Add([]byte("tokens:\n  - name: a\n    role: admin\n    token: !!int 12345678901234567890\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParseTokens(data)
		if err != nil {
			var doc tokensFile
			if yamlErr := decodeTokensForTest(data, &doc); yamlErr == nil {
				for _, tk := range doc.Tokens {
					if len(tk.Token) >= 8 && strings.Contains(err.Error(), tk.Token) {
						t.Fatalf("error %q quotes a token", err)
					}
				}
			}
			return
		}
		for _, e := range set {
			if e.name == "" || e.role < RoleViewer || e.role > RoleAdmin {
				t.Fatalf("loaded entry %+v", e)
			}
		}
	})
}

// FuzzRedactURL: a secret planted in a webhook URL's user info, path or query never
// survives redaction, whatever surrounds it, and the host stays.
func FuzzRedactURL(f *testing.F) {
	f.Add("https", "hooks.slack.com", "services", "T0AAAA/B0BBBB/XXXXXXXXXXXXXXXX", "token", "s3cretValue")
	f.Add("http", "127.0.0.1:9", "hook", "Abc123", "k", "v")
	f.Add("https", "discord.com", "api/webhooks", "1234567890/abcDEF-token", "", "")
	f.Add("https", "h", "", "%2Fsecret%2F", "a b", "c&d")
	f.Fuzz(func(t *testing.T, scheme, host, words, secret, key, value string) {
		// The secret is one path segment that does not read as a word (a lower-case word
		// of up to 24 letters is taken for structure: see model.RedactURL). A URL holds no
		// white space, control characters or quotes: free text ends a URL at them.
		urlText := func(s, also string) bool {
			return !strings.ContainsFunc(s, func(r rune) bool {
				return unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("\"'<>`"+also, r)
			})
		}
		if !plainScheme(scheme) || host == "" || !urlText(host, "/?#@") || len(secret) < 6 ||
			!urlText(secret, "/?#@:&=%") || isPlainWordForTest(secret) ||
			!urlText(value, "&#") || !urlText(key, "&=#") || !urlText(words, "?#@") {
			return
		}
		raw := scheme + "://user:" + secret + "@" + host + "/" + words + "/" + secret
		if key != "" {
			raw += "?" + key + "=" + value + "&t=" + secret
		}
		for _, out := range []string{model.RedactURL(raw), model.RedactText("failed: " + raw + " (x)"), model.RedactText("echo "+secret, raw)} {
			if strings.Contains(out, secret) && !strings.Contains(scheme+"://"+host+"/"+words, secret) {
				t.Fatalf("secret %q survives in %q (from %q)", secret, out, raw)
			}
		}
		if out := model.RedactURL(raw); !strings.Contains(out, host) && !strings.Contains(host, "@") {
			t.Fatalf("host %q lost: %q", host, out)
		}
	})
}
