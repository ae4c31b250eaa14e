package xds_test

import (
	"os"
	"testing"

	"github.com/octoacme/octoroll/xds/xdstest"
)

// TestMain lets the test binary double as the proxyless gRPC client process that the
// integration tests start (gRPC reads its xDS bootstrap once per process).
func TestMain(m *testing.M) {
	xdstest.RunClientIfRequested()
	os.Exit(m.Run())
}
