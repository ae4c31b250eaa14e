package admin

import (
	"os"
	"testing"

	"github.com/octoacme/octoroll/xds/xdstest"
)

// TestMain lets the test binary double as the proxyless gRPC client process that the
// config dump test starts (gRPC reads its xDS bootstrap once per process).
func TestMain(m *testing.M) {
	xdstest.RunClientIfRequested()
	os.Exit(m.Run())
}
