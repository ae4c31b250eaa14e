package controller

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestHTTPCheckValidation(t *testing.T) {
	good := HTTPCheck{Name: "home", Path: "/"}
	tests := []struct {
		name  string
		edit  func(*Spec)
		field string // "" when valid
	}{
		{"minimal", func(s *Spec) { s.SmokeTests = []HTTPCheck{good} }, ""},
		{"full", func(s *Spec) {
			s.SmokeTests = []HTTPCheck{{Name: "login", Method: "post", Path: "/api/login?x=1", Headers: map[string]string{"Content-Type": "application/json"},
				Body: `{"u":"a"}`, URL: "https://edge.example:8443", Timeout: Duration(2 * time.Second),
				Expect: HTTPExpect{Status: []int{200, 201}, BodyContains: "ok", JSON: []JSONExpect{{Path: "user.roles.0", Equals: "admin"}, {Path: ".", Equals: "x"}}}}}
			s.Synthetics = []HTTPCheck{{Name: "cart", Path: "/cart", Port: 9090}}
		}, ""},
		{"name required", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Path: "/"}} }, "smokeTests[0].name: name required"},
		{"name unique across smoke and synthetics", func(s *Spec) {
			s.SmokeTests = []HTTPCheck{good}
			s.Synthetics = []HTTPCheck{good}
		}, `synthetics[0].name: check "home" already declared at smokeTests[0].name`},
		{"name unique with smokeChecks", func(s *Spec) {
			s.SmokeTests = []HTTPCheck{{Name: "smoke", Path: "/"}}
		}, `smokeTests[0].name: check "smoke" already declared at smokeChecks[0]`},
		{"name unique with customChecks", func(s *Spec) {
			s.Synthetics = []HTTPCheck{{Name: "biz", Path: "/"}}
			s.CustomChecks = []Check{{Name: "biz"}}
		}, `synthetics[0].name: check "biz" already declared at customChecks[0].name`},
		{"bad method", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a", Method: "GE T", Path: "/"}} }, "smokeTests[0].method:"},
		{"path required", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a"}} }, "smokeTests[0].path: required"},
		{"relative path", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a", Path: "health"}} }, "smokeTests[0].path:"},
		{"scheme-relative path", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a", Path: "//evil/x"}} }, "smokeTests[0].path:"},
		{"path with space", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/a b"}} }, "smokeTests[0].path:"},
		{"path with newline", func(s *Spec) { s.Synthetics = []HTTPCheck{{Name: "a", Path: "/a\r\nX: y"}} }, "synthetics[0].path:"},
		{"header name", func(s *Spec) {
			s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/", Headers: map[string]string{"Bad Name": "x"}}}
		}, `smokeTests[0].headers["Bad Name"]: not a valid header name`},
		{"header value", func(s *Spec) {
			s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/", Headers: map[string]string{"X": "a\nb"}}}
		}, `smokeTests[0].headers["X"]: control characters`},
		{"url scheme", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/", URL: "ftp://h:1"}} }, "smokeTests[0].url:"},
		{"url with path", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/", URL: "http://h:1/x"}} }, "smokeTests[0].url:"},
		{"url not parsable", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/", URL: "http://h:port"}} }, "smokeTests[0].url:"},
		{"url and port", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/", URL: "http://h:1", Port: 80}} }, "smokeTests[0].port: applies to direct"},
		{"port range", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/", Port: 70000}} }, "smokeTests[0].port:"},
		{"negative timeout", func(s *Spec) { s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/", Timeout: -1}} }, "smokeTests[0].timeout: must not be negative"},
		{"timeout beyond interval", func(s *Spec) {
			s.CheckInterval = Duration(3 * time.Second)
			s.Synthetics = []HTTPCheck{{Name: "a", Path: "/", Timeout: Duration(5 * time.Second)}}
		}, "synthetics[0].timeout: 5s is longer than the check interval 3s"},
		{"status range", func(s *Spec) {
			s.SmokeTests = []HTTPCheck{good, {Name: "b", Path: "/", Expect: HTTPExpect{Status: []int{200, 99}}}}
		}, "smokeTests[1].expect.status[1]: 99"},
		{"json path empty", func(s *Spec) {
			s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/", Expect: HTTPExpect{JSON: []JSONExpect{{Equals: "x"}}}}}
		}, "smokeTests[0].expect.json[0].path: required"},
		{"json path empty key", func(s *Spec) {
			s.SmokeTests = []HTTPCheck{{Name: "a", Path: "/", Expect: HTTPExpect{JSON: []JSONExpect{{Path: "a..b"}}}}}
		}, "smokeTests[0].expect.json[0].path:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testSpec(Minor)
			tt.edit(&spec)
			err := spec.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("valid spec: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %v, want it to contain %q", err, tt.field)
			}
		})
	}
}

func TestHTTPChecksResolveAndPreflight(t *testing.T) {
	spec := testSpec(Minor)
	spec.SmokeChecks = nil
	if err := Preflight(spec); err == nil {
		t.Fatal("no smoke tests at all passed pre-flight")
	}
	spec.SmokeTests = []HTTPCheck{{Name: "home", Method: "post", Path: "/", Headers: map[string]string{"A": "b"}}}
	spec.Synthetics = []HTTPCheck{{Name: "cart", Path: "/cart", Timeout: Duration(time.Second)}}
	if err := Preflight(spec); err != nil {
		t.Fatalf("smokeTests do not satisfy pre-flight: %v", err)
	}
	p, err := Resolve(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.SmokeTests) != 1 || p.SmokeTests[0].Method != "POST" || p.SmokeTests[0].Timeout != Duration(DefaultHTTPCheckTimeout) {
		t.Errorf("smoke tests %+v", p.SmokeTests)
	}
	if len(p.Synthetics) != 1 || p.Synthetics[0].Method != "GET" || p.Synthetics[0].Timeout != Duration(time.Second) {
		t.Errorf("synthetics %+v", p.Synthetics)
	}
	spec.SmokeTests[0].Headers["A"] = "changed"
	if p.SmokeTests[0].Headers["A"] != "b" {
		t.Error("plan shares the spec's header map")
	}
}

// TestHTTPCheckDecoding: the YAML and JSON names an operator writes decode strictly.
func TestHTTPCheckDecoding(t *testing.T) {
	const doc = `
smokeTests:
  - name: login
    method: POST
    path: /api/login
    headers: {Content-Type: application/json}
    body: '{"user":"smoke"}'
    url: http://127.0.0.1:10000
    timeout: 2s
    expect:
      status: [200, 201]
      bodyContains: token
      json:
        - {path: status, equals: ok}
synthetics:
  - name: cart
    path: /cart
    port: 9090
`
	var fromYAML Spec
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&fromYAML); err != nil {
		t.Fatal(err)
	}
	want := HTTPCheck{Name: "login", Method: "POST", Path: "/api/login", Headers: map[string]string{"Content-Type": "application/json"},
		Body: `{"user":"smoke"}`, URL: "http://127.0.0.1:10000", Timeout: Duration(2 * time.Second),
		Expect: HTTPExpect{Status: []int{200, 201}, BodyContains: "token", JSON: []JSONExpect{{Path: "status", Equals: "ok"}}}}
	if len(fromYAML.SmokeTests) != 1 || !equalJSON(t, fromYAML.SmokeTests[0], want) {
		t.Fatalf("YAML decoded %+v", fromYAML.SmokeTests)
	}
	if len(fromYAML.Synthetics) != 1 || fromYAML.Synthetics[0].Port != 9090 {
		t.Fatalf("YAML synthetics %+v", fromYAML.Synthetics)
	}
	b, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"smokeTests"`, `"bodyContains"`, `"synthetics"`, `"timeout":"2s"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	if bytes.Contains(b, []byte(`"expect":{}`)) {
		t.Errorf("empty expect written: %s", b)
	}
	var fromJSON Spec
	jd := json.NewDecoder(bytes.NewReader(b))
	jd.DisallowUnknownFields()
	if err := jd.Decode(&fromJSON); err != nil {
		t.Fatal(err)
	}
	if !equalJSON(t, fromJSON.SmokeTests[0], want) {
		t.Fatalf("JSON round trip %+v", fromJSON.SmokeTests[0])
	}
	var unknown Spec
	dec = yaml.NewDecoder(strings.NewReader("smokeTests: [{name: a, path: /, expect: {code: 200}}]"))
	dec.KnownFields(true)
	if err := dec.Decode(&unknown); err == nil {
		t.Error("unknown field expect.code accepted")
	}
}

func TestParseJSONPath(t *testing.T) {
	for _, tt := range []struct {
		path string
		keys []string
		err  bool
	}{
		{".", nil, false},
		{"status", []string{"status"}, false},
		{"items.0.id", []string{"items", "0", "id"}, false},
		{"", nil, true},
		{"a.", nil, true},
		{".a", nil, true},
	} {
		keys, err := ParseJSONPath(tt.path)
		if (err != nil) != tt.err || strings.Join(keys, "|") != strings.Join(tt.keys, "|") {
			t.Errorf("ParseJSONPath(%q) = %q, %v", tt.path, keys, err)
		}
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(x, y)
}
