package admin

import (
	"net/http"

	"github.com/octoacme/octoroll/runner"
)

// runnerSentinels are the runner's errors with their statuses.
func runnerSentinels() []sentinel {
	return []sentinel{
		{runner.ErrUnknownService, http.StatusNotFound, CodeUnknownService},
		{runner.ErrNotFound, http.StatusNotFound, CodeNotFound},
		{runner.ErrActiveRollout, http.StatusConflict, CodeActiveRollout},
		{runner.ErrNoActiveRollout, http.StatusConflict, CodeNoActiveRollout},
	}
}
