package admin

import (
	"github.com/octoacme/octoroll/admin/api"
	"net/http"

	"github.com/octoacme/octoroll/runner"
)

// runnerSentinels are the runner's errors with their statuses.
func runnerSentinels() []sentinel {
	return []sentinel{
		{runner.ErrUnknownService, http.StatusNotFound, api.CodeUnknownService},
		{runner.ErrNotFound, http.StatusNotFound, api.CodeNotFound},
		{runner.ErrActiveRollout, http.StatusConflict, api.CodeActiveRollout},
		{runner.ErrNoActiveRollout, http.StatusConflict, api.CodeNoActiveRollout},
		{runner.ErrUnknownCheck, http.StatusBadRequest, api.CodeUnknownCheck},
		{runner.ErrNotLeader, http.StatusServiceUnavailable, api.CodeNotLeader},
		{runner.ErrNotFrozen, http.StatusConflict, api.CodeNotFrozen},
		{runner.ErrReasonRequired, http.StatusBadRequest, api.CodeReasonRequired},
	}
}
