package notify

import (
	"net"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
)

// A sink that cannot be reached fails with an error naming its URL: the error, the
// stats and the delivery show the URL redacted.
func TestUnreachableSinkErrorRedacted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: connection refused
	url := "http://user:PASSWORD99@" + addr + "/services/T0/B0/SLACKSECRET1?token=TOKENSECRET2"
	failed := make(chan Delivery, 1)
	opts := fast
	opts.MaxAttempts = 1
	opts.OnEvent = func(d Delivery) { failed <- d }
	n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "hook", URL: url}}, opts)
	run(t, n)
	r := started(t)
	n.Notify(eventOf(r, controller.EventStarted), r)
	d := <-failed
	for _, text := range []string{d.Err.Error(), n.Stats()["hook"].LastError} {
		for _, s := range []string{"PASSWORD99", "SLACKSECRET1", "TOKENSECRET2"} {
			if strings.Contains(text, s) {
				t.Errorf("%s in %q", s, text)
			}
		}
		if !strings.Contains(text, addr+"/services/***") {
			t.Errorf("error %q does not name the redacted URL", text)
		}
	}
}
