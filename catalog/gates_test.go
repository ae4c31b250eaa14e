package catalog

import (
	"strings"
	"testing"
	"time"
)

const gateCatalog = `
services:
  - name: checkout
    port: 10000
    stable: v1
    versions:
      - name: v1
        endpoints: ["127.0.0.1:9001"]
    gates:
      confirmPromotion:
        - name: qa
          url: https://qa.example.com/confirm
          secretFile: /etc/octoroll/qa.secret
          timeout: 5s
          onFail: pause
freezes:
  - name: year-end
    start: 2026-12-24T00:00:00Z
    end: "2027-01-02T00:00:00Z"
    reason: year-end change freeze
`

func TestCatalogGatesAndFreezes(t *testing.T) {
	c, err := Parse("catalog.yaml", []byte(gateCatalog))
	if err != nil {
		t.Fatal(err)
	}
	h := c.Services[0].Gates.ConfirmPromotion
	if len(h) != 1 || h[0].Timeout.D() != 5*time.Second || h[0].OnFail != "pause" {
		t.Fatalf("gates %+v", c.Services[0].Gates)
	}
	w := c.Freezes[0]
	if !w.Start.Equal(time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)) || !w.Contains(time.Date(2027, 1, 1, 23, 0, 0, 0, time.UTC)) || w.Contains(w.End) {
		t.Fatalf("freeze window %+v", w)
	}
	bad := strings.NewReplacer("secretFile: /etc/octoroll/qa.secret", "timeout: 5s", "onFail: pause", "onFail: ignore",
		"end: \"2027-01-02T00:00:00Z\"", "end: 2026-12-01T00:00:00Z", "start: 2026-12-24T00:00:00Z", "start: christmas").Replace(gateCatalog)
	_, err = Parse("catalog.yaml", []byte(bad))
	for _, want := range []string{
		"services[0].gates.confirmPromotion[0].secretFile: required",
		`services[0].gates.confirmPromotion[0].onFail: "ignore": want rollback or pause`,
		`freezes[0].start: "christmas": want an RFC 3339 time`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}
