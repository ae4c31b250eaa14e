package admin

import (
	"encoding/json"
	"errors"
	"github.com/octoacme/octoroll/admin/api"
	"net/http"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// apiError is an error with the HTTP status and code it is answered with.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, msg string) *apiError {
	return &apiError{status: status, code: code, msg: msg}
}

// sentinel maps a backend error to its status and code.
type sentinel struct {
	err    error
	status int
	code   string
}

// sentinels is checked in order with errors.Is; the first match wins. The runner's own
// sentinels are added by runnerSentinels (see runner.go).
var sentinels = []sentinel{
	{controller.ErrPreflight, http.StatusUnprocessableEntity, api.CodePreflight},
	{controller.ErrInvalidSpec, http.StatusBadRequest, api.CodeInvalidSpec},
	{controller.ErrReasonRequired, http.StatusBadRequest, api.CodeReasonRequired},
	{controller.ErrUnknownCommand, http.StatusBadRequest, api.CodeUnknownCommand},
	{controller.ErrOutsideWindow, http.StatusConflict, api.CodeOutsideWindow},
	{controller.ErrFrozen, http.StatusConflict, api.CodeFrozen},
	{controller.ErrGateHeld, http.StatusConflict, api.CodeGateHeld},
	{controller.ErrCheckFailing, http.StatusConflict, api.CodeCheckFailing},
	{controller.ErrInvalidState, http.StatusConflict, api.CodeInvalidState},
}

// classify returns the status, code and client-facing message of err. Errors that map to
// no known sentinel are internal: their text (which may name files) is never sent.
func classify(err error) (int, string, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ae.code, ae.msg
	}
	for _, s := range append(runnerSentinels(), sentinels...) {
		if errors.Is(err, s.err) {
			return s.status, s.code, err.Error()
		}
	}
	return http.StatusInternalServerError, api.CodeInternal, "internal error"
}

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error","code":"internal"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.Error{Error: model.RedactText(msg), Code: code})
}
