package runner_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/notify"
)

// TestFreezeNotified: a freeze and an unfreeze reach a real webhook receiver through
// the notifier, with their reasons and actors; a reason longer than model.MaxReasonLen
// is refused naming the field, and nothing is frozen.
func TestFreezeNotified(t *testing.T) {
	var mu sync.Mutex
	var got []notify.Payload
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p notify.Payload
		_ = json.Unmarshal(body, &p)
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	n := notify.New(zaptest.NewLogger(t), []catalog.Sink{{Name: "ops", URL: recv.URL, Format: catalog.FormatJSON,
		Events: []string{catalog.EventFrozen, catalog.EventUnfrozen}}}, notify.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h := newHarnessWith(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false, func(h *harness) { h.notify = n })

	if _, err := h.run.Freeze(ctx, strings.Repeat("x", model.MaxReasonLen+1), "bob"); err == nil || !strings.Contains(err.Error(), "reason: 1025 bytes, at most 1024") {
		t.Fatalf("a long reason: %v", err)
	}
	if h.run.FreezeStatus().Frozen() {
		t.Fatal("frozen by a refused freeze")
	}
	if _, err := h.run.Freeze(ctx, "incident 42", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.run.Unfreeze(ctx, "incident over", "carol"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications received, want 2", n)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	mu.Lock()
	defer mu.Unlock()
	if got[0].Event != catalog.EventFrozen || got[0].Actor != "bob" || !strings.Contains(got[0].Reason, "incident 42") ||
		got[1].Event != catalog.EventUnfrozen || got[1].Actor != "carol" || !strings.Contains(got[1].Reason, "incident over") {
		t.Fatalf("notifications %+v", got)
	}
}
