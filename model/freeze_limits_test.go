package model

import (
	"strings"
	"testing"
	"time"
)

// TestFreezeWindowReasonBounded: a freeze window's reason is bounded by MaxReasonLen,
// as the reason of a freeze set by a person is.
func TestFreezeWindowReasonBounded(t *testing.T) {
	t0 := time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)
	var got []string
	ValidateFreezeWindows([]FreezeWindow{
		{Name: "ok", Start: t0, End: t0.Add(time.Hour), Reason: strings.Repeat("x", MaxReasonLen)},
		{Name: "long", Start: t0, End: t0.Add(time.Hour), Reason: strings.Repeat("x", MaxReasonLen+1)},
	}, "freezes", func(field, msg string) { got = append(got, field+": "+msg) })
	if len(got) != 1 || !strings.HasPrefix(got[0], "freezes[1].reason: 1025 bytes") {
		t.Fatalf("problems %q", got)
	}
}
