package admin

import (
	"encoding/json"
	"testing"
	"time"
)

// TestStatusDurationsAreStrings: every duration GET /api/v1/status answers is a Go
// duration string, the xDS server's publish times and lock holds as well as the rest.
func TestStatusDurationsAreStrings(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var st struct {
		XDS struct {
			PushDuration, LastPushDuration any
			LockHolds                      map[string]any
		}
	}
	if err := json.Unmarshal(f.do(t, get("/api/v1/status")).body, &st); err != nil {
		t.Fatal(err)
	}
	values := map[string]any{"xds.pushDuration": st.XDS.PushDuration, "xds.lastPushDuration": st.XDS.LastPushDuration}
	for k, v := range st.XDS.LockHolds {
		values["xds.lockHolds."+k] = v
	}
	if len(values) != 5 {
		t.Fatalf("status xds durations %v, want push, last push and three lock holds", values)
	}
	for k, v := range values {
		s, ok := v.(string)
		if !ok {
			t.Errorf("%s = %v (%T), want a duration string", k, v, v)
			continue
		}
		if _, err := time.ParseDuration(s); err != nil {
			t.Errorf("%s = %q: %v", k, s, err)
		}
	}
}
