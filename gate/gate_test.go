package gate

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVerify: a receiver accepts what Sign produced, and refuses a tampered body, a
// wrong secret and a replay of an old request.
func TestVerify(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"point":"preRollout"}`)
	sig := Sign([]byte("s3cret"), ts, body)
	if !strings.HasPrefix(sig, SignaturePrefix) || len(sig) != len(SignaturePrefix)+64 {
		t.Fatalf("signature %q", sig)
	}
	if err := Verify([]byte("s3cret"), ts, sig, body, now.Add(time.Minute), 0); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	for name, err := range map[string]error{
		"tampered body": Verify([]byte("s3cret"), ts, sig, []byte(`{"point":"postRollout"}`), now, 0),
		"wrong secret":  Verify([]byte("other"), ts, sig, body, now, 0),
		"replay":        Verify([]byte("s3cret"), ts, sig, body, now.Add(6*time.Minute), 0),
		"bad timestamp": Verify([]byte("s3cret"), "yesterday", sig, body, now, 0),
	} {
		if err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
