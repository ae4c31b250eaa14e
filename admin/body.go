package admin

import (
	"net/http"
	"strings"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/model"
)

// readJSON reads a request body that must be JSON into v; an empty body is accepted
// when allowEmpty.
func readJSON(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) error {
	if _, err := bodyFormat(r, false); err != nil {
		return err
	}
	data, err := readBody(w, r)
	if err != nil {
		return err
	}
	return DecodeJSON(data, v, allowEmpty)
}

// trimReason is an operator's reason as it is recorded: without surrounding white
// space, at most model.MaxReasonLen bytes (a 400 naming the field otherwise).
func trimReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if err := model.CheckLength("reason", reason, model.MaxReasonLen); err != nil {
		return "", errorf(http.StatusBadRequest, api.CodeBadRequest, err.Error())
	}
	return reason, nil
}
