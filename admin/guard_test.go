package admin

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/admin/api"
)

// TestHostOriginContentType sends requests with chosen Host, Origin and Content-Type
// headers to servers configured with different listen addresses and allow-lists.
func TestHostOriginContentType(t *testing.T) {
	type tc struct {
		name                       string
		addr                       string
		allowed                    []string
		method, path, host, origin string
		ctype, fetchSite, body     string
		status                     int
		code                       string
	}
	const pause = "/api/v1/services/checkout/pause"
	cases := []tc{
		{name: "read via loopback address", method: "GET", path: "/api/v1/services", status: 200},
		{name: "read via localhost", method: "GET", path: "/api/v1/services", host: "localhost:8080", status: 200},
		{name: "read via IPv6 loopback", method: "GET", path: "/api/v1/services", host: "[::1]:8080", status: 200},
		{name: "read via foreign name (rebinding)", method: "GET", path: "/api/v1/services", host: "evil.example:8080", status: 403, code: api.CodeForbiddenHost},
		{name: "page via foreign name", method: "GET", path: "/", host: "evil.example", status: 403, code: api.CodeForbiddenHost},
		{name: "metrics via foreign name", method: "GET", path: "/metrics", host: "evil.example", status: 403, code: api.CodeForbiddenHost},
		{name: "healthz whatever the Host", method: "GET", path: "/healthz", host: "10.1.2.3:8080", status: 200},
		{name: "foreign IP on loopback bind", method: "GET", path: "/api/v1/services", host: "10.1.2.3:8080", status: 403, code: api.CodeForbiddenHost},
		{name: "any IP on wildcard bind", addr: ":8080", method: "GET", path: "/api/v1/services", host: "10.1.2.3:8080", status: 200},
		{name: "name on wildcard bind", addr: "0.0.0.0:8080", method: "GET", path: "/api/v1/services", host: "octoroll:8080", status: 403, code: api.CodeForbiddenHost},
		{name: "allowed name", addr: ":8080", allowed: []string{"octoroll"}, method: "GET", path: "/api/v1/services", host: "octoroll:8080", status: 200},
		{name: "allowed subdomain", addr: ":8080", allowed: []string{"*.example.com"}, method: "GET", path: "/", host: "Admin.Example.com.", status: 200},
		{name: "allow-list suffix is not a subdomain", addr: ":8080", allowed: []string{"*.example.com"}, method: "GET", path: "/", host: "evilexample.com", status: 403, code: api.CodeForbiddenHost},
		{name: "configured name", addr: "admin.internal:8080", method: "GET", path: "/api/v1/services", host: "admin.internal:8080", status: 200},
		{name: "mutation without Origin (CLI)", method: "POST", path: pause, body: "{}", status: 200},
		{name: "mutation from the same origin", method: "POST", path: pause, origin: "SELF", body: "{}", status: 200},
		{name: "mutation from another port", method: "POST", path: pause, origin: "http://127.0.0.1:1", body: "{}", status: 403, code: api.CodeForbiddenOrigin},
		{name: "mutation from another site", method: "POST", path: pause, origin: "https://evil.example", body: "{}", status: 403, code: api.CodeForbiddenOrigin},
		{name: "mutation from a null origin", method: "POST", path: pause, origin: "null", body: "{}", status: 403, code: api.CodeForbiddenOrigin},
		{name: "mutation from an allowed origin", allowed: []string{"ops.example.com"}, method: "POST", path: pause, origin: "https://ops.example.com", body: "{}", status: 200},
		{name: "cross-site fetch without Origin", method: "POST", path: pause, fetchSite: "cross-site", body: "{}", status: 403, code: api.CodeForbiddenOrigin},
		{name: "same-origin fetch metadata", method: "POST", path: pause, fetchSite: "same-origin", body: "{}", status: 200},
		{name: "mutation via foreign Host", method: "POST", path: pause, host: "evil.example", body: "{}", status: 403, code: api.CodeForbiddenHost},
		{name: "no Content-Type", method: "POST", path: pause, ctype: "none", body: "{}", status: 415, code: api.CodeUnsupportedType},
		{name: "no Content-Type, no body", method: "POST", path: pause, ctype: "none", status: 415, code: api.CodeUnsupportedType},
		{name: "text/plain", method: "POST", path: pause, ctype: "text/plain", body: "{}", status: 415, code: api.CodeUnsupportedType},
		{name: "form", method: "POST", path: pause, ctype: "application/x-www-form-urlencoded", body: "a=b", status: 415, code: api.CodeUnsupportedType},
		{name: "multipart", method: "POST", path: pause, ctype: "multipart/form-data; boundary=x", body: "--x--", status: 415, code: api.CodeUnsupportedType},
		{name: "YAML action", method: "POST", path: pause, ctype: "application/yaml", body: "{}", status: 415, code: api.CodeUnsupportedType},
		{name: "JSON with charset, empty body", method: "POST", path: pause, ctype: "application/json; charset=utf-8", status: 200},
		{name: "YAML spec", method: "POST", path: "/api/v1/rollouts", ctype: "application/yaml", body: "service: checkout\ncanary: {version: v2}\nrelease: {name: '2', type: patch}\n", status: 201},
		{name: "check without Content-Type", method: "POST", path: "/api/v1/services/checkout/checks", ctype: "none", body: `{"name":"smoke","passed":true}`, status: 415, code: api.CodeUnsupportedType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.addr == "" {
				c.addr = "127.0.0.1:8080"
			}
			a := New(zaptest.NewLogger(t), Options{Backend: newFakeBackend(), Addr: c.addr, AllowedHosts: c.allowed})
			srv := newRecordingServer(t, a.Handler())
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			hr, err := http.NewRequest(c.method, srv.URL+c.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if c.host != "" {
				hr.Host = c.host
			}
			switch c.origin {
			case "":
			case "SELF":
				hr.Header.Set("Origin", srv.URL)
			default:
				hr.Header.Set("Origin", c.origin)
			}
			if c.fetchSite != "" {
				hr.Header.Set("Sec-Fetch-Site", c.fetchSite)
			}
			switch {
			case c.ctype == "none":
			case c.ctype != "":
				hr.Header.Set("Content-Type", c.ctype)
			case c.method == "POST":
				hr.Header.Set("Content-Type", "application/json")
			}
			res, err := srv.Client().Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			expect(t, c.name, resp{status: res.StatusCode, header: res.Header, body: b}, c.status, c.code)
		})
	}
}
