package model

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// splitHostPort is net.SplitHostPort without package net: same results, same error
// texts, on every input.
func TestSplitHostPortMatchesNet(t *testing.T) {
	for _, in := range []string{
		"10.0.0.1:80", "[::1]:80", "[fe80::1%eth0]:80", "host:1", ":80", "host:", "host",
		"::1:80", "[::1]", "[::1]x", "[::1]:80:81", "[::1", "a[b]:80", "a]:80", "[a]]:80",
		"[[a]:80", "", ":", "[]:80", "a:b:c",
	} {
		h1, p1, e1 := splitHostPort(in)
		h2, p2, e2 := net.SplitHostPort(in)
		var want string
		if e2 != nil {
			want = e2.(*net.AddrError).Err
		}
		var got string
		if e1 != nil {
			got = e1.Error()
		}
		if h1 != h2 || p1 != p2 || got != want {
			t.Errorf("%q: got (%q, %q, %q), net gives (%q, %q, %q)", in, h1, p1, got, h2, p2, want)
		}
	}
}

func FuzzSplitHostPort(f *testing.F) {
	f.Add("[::1]:80")
	f.Add("a:b")
	f.Fuzz(func(t *testing.T, in string) {
		h1, p1, e1 := splitHostPort(in)
		h2, p2, e2 := net.SplitHostPort(in)
		if h1 != h2 || p1 != p2 || (e1 == nil) != (e2 == nil) {
			t.Fatalf("%q: got (%q, %q, %v), net gives (%q, %q, %v)", in, h1, p1, e1, h2, p2, e2)
		}
	})
}

func TestEndpointString(t *testing.T) {
	for _, c := range []struct {
		e    Endpoint
		want string
	}{
		{Endpoint{Host: "10.0.0.1", Port: 80}, "10.0.0.1:80"},
		{Endpoint{Host: "::1", Port: 8080}, "[::1]:8080"},
		{Endpoint{Host: "a.b", Port: 1}, "a.b:1"},
	} {
		if got := c.e.String(); got != c.want || got != net.JoinHostPort(c.e.Host, strconv.Itoa(int(c.e.Port))) {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
		if back, err := ParseEndpoint(c.want); err != nil || back != c.e {
			t.Errorf("ParseEndpoint(%q) = %v, %v", c.want, back, err)
		}
	}
}

// The text methods make yaml.v3's own encoder and decoder write and read the same
// strings as JSON, with the same rules (a duration needs a unit and is positive).
func TestTextEncodings(t *testing.T) {
	type doc struct {
		E Endpoint `yaml:"e" json:"e"`
		D Duration `yaml:"d" json:"d"`
	}
	in := doc{E: Endpoint{Host: "::1", Port: 80}, D: Duration(1500 * 1e6)}
	y, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(y) != "e: '[::1]:80'\nd: 1.5s\n" {
		t.Errorf("yaml = %q", y)
	}
	var back doc
	if err := yaml.Unmarshal(y, &back); err != nil || back != in {
		t.Errorf("yaml round trip: %v, %v", back, err)
	}
	j, _ := json.Marshal(in)
	if string(j) != `{"e":"[::1]:80","d":"1.5s"}` {
		t.Errorf("json = %s", j)
	}
	for _, bad := range []struct{ doc, want string }{
		{"d: 30\n", "a duration needs a unit"},
		{"d: -5s\n", "must be positive"},
		{"d: soon\n", "want a duration such as"},
		{"e: nohost\n", "want host:port"},
	} {
		var d doc
		if err := yaml.Unmarshal([]byte(bad.doc), &d); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.doc, err, bad.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{12001188759, "12s"},
		{37933333, "37.9ms"},
		{998400 * time.Microsecond, "998ms"},
		{999700 * time.Microsecond, "1s"},
		{1500 * time.Millisecond, "1.5s"},
		{1234 * time.Millisecond, "1.23s"},
		{30 * time.Second, "30s"},
		{59960 * time.Millisecond, "1m0s"},
		{152400 * time.Millisecond, "2m32s"},
		{90 * time.Second, "1m30s"},
		{time.Hour, "1h0m0s"},
		{250 * time.Millisecond, "250ms"},
		{1500 * time.Nanosecond, "1.5µs"},
		{999 * time.Nanosecond, "999ns"},
		{-2500 * time.Millisecond, "-2.5s"},
	} {
		got := FormatDuration(tc.d)
		if got != tc.want {
			t.Errorf("FormatDuration(%d) = %q, want %q", tc.d, got, tc.want)
		}
		if got != Duration(tc.d).String() {
			t.Errorf("Duration(%d).String() = %q, want FormatDuration's %q", tc.d, Duration(tc.d).String(), got)
		}
		// What is printed reads back (to the precision shown).
		if back, err := time.ParseDuration(got); err != nil {
			t.Errorf("%q does not parse: %v", got, err)
		} else if FormatDuration(back) != got {
			t.Errorf("%q reads back as %s, prints %q", got, back, FormatDuration(back))
		}
	}
	// Stored values read back exactly: JSON and YAML carry the whole duration.
	in := struct{ D Duration }{Duration(1234 * time.Millisecond)}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `{"D":"1.234s"}` {
		t.Errorf("JSON %s, %v", b, err)
	}
	var back struct{ D Duration }
	if err := json.Unmarshal(b, &back); err != nil || back != in {
		t.Errorf("JSON round trip %+v, %v; want %+v", back, err, in)
	}
}

func TestCatalogStatusJSON(t *testing.T) {
	st := CatalogStatus{Generation: 2, Refused: "it drops service checkout"}
	b, err := json.Marshal(st)
	if err != nil || !strings.Contains(string(b), `"state":"refused: it drops service checkout"`) {
		t.Fatalf("JSON %s, %v", b, err)
	}
	var back CatalogStatus
	if err := json.Unmarshal(b, &back); err != nil || back != st {
		t.Errorf("round trip %+v, %v; want %+v", back, err, st)
	}
	if got := (CatalogStatus{Failing: true, LastError: "bad port"}).State(); got != "failing: bad port" {
		t.Errorf("failing state %q", got)
	}
	if got := (CatalogStatus{}).State(); got != "loaded" {
		t.Errorf("state %q", got)
	}
}

func TestSRVEndpoint(t *testing.T) {
	e, err := ParseEndpoint("srv:_grpc._tcp.v2.shop.svc.cluster.local")
	if err != nil || e != (Endpoint{Host: "_grpc._tcp.v2.shop.svc.cluster.local", SRV: true}) {
		t.Fatalf("ParseEndpoint = %+v, %v", e, err)
	}
	if e.String() != "srv:_grpc._tcp.v2.shop.svc.cluster.local" || e.IsIP() || e.Validate() != nil {
		t.Errorf("String %q, IsIP %v, Validate %v", e.String(), e.IsIP(), e.Validate())
	}
	if e.Key() == (Endpoint{Host: e.Host}).Key() {
		t.Error("an SRV name and a host name share a key")
	}
	for _, bad := range []string{"srv:", "srv:_grpc._tcp.v2:8080", "srv:bad_name!.x", "srv:-a.b"} {
		if _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", bad)
		}
	}
	if err := (Endpoint{Host: "_a._tcp.b", Port: 80, SRV: true}).Validate(); err == nil {
		t.Error("an SRV endpoint with a port validated")
	}
	if _, err := ParseEndpoint("_grpc._tcp.v2:80"); err == nil {
		t.Error("an underscore host name without srv: accepted")
	}
}
