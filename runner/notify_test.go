package runner_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/notify"
)

// TestStuckWebhookDoesNotDelayRollback: with the only webhook receiver stuck inside a
// request, an abort still persists and publishes 100 % known-good at once, and the
// rollback's incident reaches the receiver once it answers again.
func TestStuckWebhookDoesNotDelayRollback(t *testing.T) {
	entered := make(chan string, 16)
	release := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		entered <- string(body)
		<-release
	}))
	t.Cleanup(recv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	n := notify.New(zaptest.NewLogger(t), []catalog.Sink{{Name: "on-call", URL: recv.URL, Format: catalog.FormatJSON}}, notify.Options{QueueSize: 4})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	h.notify = n
	h.restart()
	if _, err := h.run.Start(context.Background(), minorSpec(), "test"); err != nil {
		t.Fatal(err)
	}
	// The receiver is now stuck in the delivery of "started".
	<-entered

	ro, err := h.run.Command(context.Background(), svcName, controller.Command{Kind: controller.CmdAbort, Actor: "sre", Reason: "security fix"})
	if err != nil {
		t.Fatalf("abort while the webhook is stuck: %v", err)
	}
	if ro.State != controller.StateRolledBack {
		t.Fatalf("state %s after abort, want rolled_back", ro.State)
	}
	if w := served(t, h.xs); w["v1"] != catalog.TotalWeight || w["v2"] != 0 {
		t.Fatalf("served weights %v while the webhook is stuck, want 100 %% v1", w)
	}
	if got := h.persisted(ro.ID).State; got != controller.StateRolledBack {
		t.Fatalf("persisted state %s, want rolled_back", got)
	}

	close(release)
	for {
		body := <-entered
		if strings.Contains(body, `"event":"rolled_back"`) {
			if !strings.Contains(body, `"incident"`) {
				t.Fatalf("rolled_back delivery without an incident: %s", body)
			}
			return
		}
	}
}
