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

func TestRounded(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                      "0ms",
		998*time.Millisecond + 400000:          "998ms",
		999*time.Millisecond + 600000:          "1.0s",
		12*time.Second + 1188759:               "12.0s",
		59*time.Second + 940*time.Millisecond:  "59.9s",
		59*time.Second + 960*time.Millisecond:  "1m0s",
		125*time.Second + 400*time.Millisecond: "2m5s",
		-1500 * time.Millisecond:               "-1.5s",
	} {
		if got := Rounded(d); got != want {
			t.Errorf("Rounded(%s) = %q, want %q", d, got, want)
		}
	}
}
