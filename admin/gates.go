package admin

import (
	"context"
	"net/http"
	"strings"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/runner"
)

// FreezeBackend is the freeze switch as the admin API drives it; *runner.Runner
// satisfies it. A Backend without it answers 503 on the freeze endpoints.
type FreezeBackend interface {
	Freeze(ctx context.Context, reason, actor string) (runner.FreezeStatus, error)
	Unfreeze(ctx context.Context, reason, actor string) (runner.FreezeStatus, error)
	FreezeStatus() runner.FreezeStatus
}

var _ FreezeBackend = (*runner.Runner)(nil)

// gateRoutes adds the freeze endpoints: GET /api/v1/freeze, POST /api/v1/freeze
// (reason required) and POST /api/v1/unfreeze. Approvals are an action
// (POST /api/v1/services/{name}/approve).
func (s *Server) gateRoutes(read, mut func(string, func(http.ResponseWriter, *http.Request) error)) {
	p := api.APIPrefix
	read("GET "+p+"/freeze", s.getFreeze)
	mut("POST "+p+"/freeze", s.setFreeze(true))
	mut("POST "+p+"/unfreeze", s.setFreeze(false))
}

func (s *Server) freezeBackend() (FreezeBackend, error) {
	fb, ok := s.opts.Backend.(FreezeBackend)
	if !ok {
		return nil, errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the freeze switch is not available in this server")
	}
	return fb, nil
}

// freezeStatus is the freeze switch on the wire, nil when the backend has none.
func (s *Server) freezeStatus() *api.FreezeStatus {
	fb, err := s.freezeBackend()
	if err != nil {
		return nil
	}
	st := wireFreeze(fb.FreezeStatus())
	return &st
}

func wireFreeze(st runner.FreezeStatus) api.FreezeStatus {
	out := api.FreezeStatus{Frozen: st.Frozen(), Active: st.Active, Manual: st.Manual, Windows: st.Windows}
	var parts []string
	for _, f := range st.Active {
		parts = append(parts, f.Summary())
	}
	out.Summary = strings.Join(parts, "; ")
	return out
}

func (s *Server) getFreeze(w http.ResponseWriter, r *http.Request) error {
	fb, err := s.freezeBackend()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireFreeze(fb.FreezeStatus()))
	return nil
}

func (s *Server) setFreeze(on bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		fb, err := s.freezeBackend()
		if err != nil {
			return err
		}
		var req api.FreezeRequest
		if err := readJSON(w, r, &req, !on); err != nil {
			return err
		}
		if req.Reason, err = trimReason(req.Reason); err != nil {
			return err
		}
		if on && req.Reason == "" {
			return errorf(http.StatusBadRequest, api.CodeReasonRequired, "reason: a freeze needs a reason (shown with it)")
		}
		var st runner.FreezeStatus
		if on {
			st, err = fb.Freeze(r.Context(), req.Reason, actor(r))
		} else {
			st, err = fb.Unfreeze(r.Context(), req.Reason, actor(r))
		}
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, wireFreeze(st))
		return nil
	}
}
