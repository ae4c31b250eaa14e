package gate

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/model"
)

// TestAskAnswerBounds: a real receiver's wait carries retryAfter, taken up to
// model.MaxGateRetryAfter; a malformed one is no answer; a long reason and a long body
// are kept to their limits; the request's id is in its header and body.
func TestAskAnswerBounds(t *testing.T) {
	var body string
	var gotID string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotID = r.Header.Get(HeaderID)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	secret := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(secret, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := New(Options{BackoffBase: time.Millisecond})
	hook := model.Webhook{Name: "h", URL: srv.URL, SecretFile: secret, Attempts: 1}
	ask := func(b string) model.GateAnswer {
		body = b
		return c.Ask(context.Background(), hook, Request{ID: RequestID("r1", "preRollout", "h"), Point: model.GatePreRollout})
	}
	if a := ask(`{"answer":"wait","retryAfter":"90s"}`); a.Answer != model.AnswerWait || a.RetryAfter.D() != 90*time.Second || !strings.Contains(a.Summary(), "retry after 1m30s") {
		t.Fatalf("retryAfter 90s: %+v", a)
	}
	if gotID != RequestID("r1", "preRollout", "h") || len(gotID) != 32 {
		t.Fatalf("id header %q", gotID)
	}
	if a := ask(`{"answer":"wait","retryAfter":"72h"}`); a.RetryAfter.D() != model.MaxGateRetryAfter {
		t.Fatalf("retryAfter 72h taken as %s", a.RetryAfter)
	}
	if a := ask(`{"answer":"wait","retryAfter":"soon"}`); a.Answer != model.AnswerError || !strings.Contains(a.Error, `retryAfter "soon"`) {
		t.Fatalf("malformed retryAfter: %+v", a)
	}
	long := strings.Repeat("é", model.MaxReasonLen)
	a := ask(`{"answer":"no-go","reason":"` + long + `"}`)
	if a.Answer != model.AnswerNoGo || len(a.Reason) > model.MaxReasonLen+len("…") || len(a.Body) > model.MaxGateBody+len("…") || !strings.HasSuffix(a.Reason, "é…") {
		t.Fatalf("reason %d bytes, body %d bytes", len(a.Reason), len(a.Body))
	}
}
