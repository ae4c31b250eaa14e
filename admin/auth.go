package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// actionRoles are the actions an operator may take; every other action, and every
// other mutation but check reports, needs an admin. An action added later is an
// admin's until listed here.
var actionRoles = map[controller.CommandKind]Role{
	controller.CmdPause:   RoleOperator,
	controller.CmdResume:  RoleOperator,
	controller.CmdAbort:   RoleOperator,
	controller.CmdApprove: RoleOperator,
}

// requiredRole is the role a mutation needs.
func requiredRole(r *http.Request) Role {
	if a := r.PathValue("action"); a != "" {
		if role, ok := actionRoles[controller.CommandKind(a)]; ok {
			return role
		}
		return RoleAdmin
	}
	if strings.HasSuffix(r.URL.Path, "/checks") {
		return RoleOperator
	}
	return RoleAdmin
}

type identityKey struct{}

// bearer returns the identity of r's bearer token; found is false when r carries
// none.
func (s *Server) bearer(r *http.Request) (id Identity, found bool, err error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return Identity{}, false, nil
	}
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Identity{}, true, errorf(http.StatusUnauthorized, api.CodeUnauthorized, "invalid Authorization: send Authorization: Bearer <token>")
	}
	id, ok = s.opts.Tokens.Lookup(strings.TrimSpace(tok))
	if !ok {
		return Identity{}, true, errorf(http.StatusUnauthorized, api.CodeUnauthorized, "invalid bearer token")
	}
	return id, true, nil
}

func (s *Server) readsNeedToken() bool { return s.opts.ReadTokenRequired && s.opts.Tokens != nil }

// readGate guards a read: when reads need a token, any valid token will do.
func (s *Server) readGate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.readsNeedToken() {
			h.ServeHTTP(w, r)
			return
		}
		id, found, err := s.bearer(r)
		if err == nil && !found {
			err = errorf(http.StatusUnauthorized, api.CodeUnauthorized, "reads need a token on this server: send Authorization: Bearer <token>")
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="octoroll"`)
			writeError(w, http.StatusUnauthorized, api.CodeUnauthorized, err.Error())
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// authorize guards a mutating handler. With tokens, a token whose role may do the
// mutation must be presented, and its name is the actor. Without, only a
// loopback-bound server accepts mutations.
func (s *Server) authorize(h func(w http.ResponseWriter, r *http.Request) error) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := checkActor(r); err != nil {
			return err
		}
		if s.opts.Tokens == nil {
			if !s.loopback.Load() {
				return errorf(http.StatusForbidden, api.CodeForbidden,
					"mutations are disabled: no admin token is configured (OCTOROLL_ADMIN_TOKEN_FILE, OCTOROLL_ADMIN_TOKENS_FILE) and the admin server is not bound to loopback")
			}
			return h(w, r)
		}
		id, found, err := s.bearer(r)
		if err != nil {
			return err
		}
		if !found {
			return errorf(http.StatusUnauthorized, api.CodeUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
		}
		if need := requiredRole(r); id.Role < need {
			return errorf(http.StatusForbidden, api.CodeForbiddenRole,
				fmt.Sprintf("token %q has role %s: this needs %s", id.Name, id.Role, need))
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	}
}

// actor is who is recorded for r's action: the token's name when tokens are
// configured (X-Octoroll-Actor, when it names someone else, is added as a note);
// otherwise X-Octoroll-Actor, or DefaultActor.
func actor(r *http.Request) string {
	stated := strings.TrimSpace(r.Header.Get(api.ActorHeader))
	id, ok := r.Context().Value(identityKey{}).(Identity)
	if !ok {
		if stated == "" {
			return api.DefaultActor
		}
		return stated
	}
	if stated == "" || stated == id.Name {
		return id.Name
	}
	return id.Name + " (note: " + stated + ")"
}

// checkActor refuses an X-Octoroll-Actor longer than its limit or holding control
// characters (it is printed by the CLI and the page).
func checkActor(r *http.Request) error {
	a := strings.TrimSpace(r.Header.Get(api.ActorHeader))
	if err := model.CheckLength(api.ActorHeader, a, model.MaxActorLen); err != nil {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, err.Error())
	}
	if strings.ContainsFunc(a, func(c rune) bool { return !unicode.IsPrint(c) }) {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, api.ActorHeader+": control characters are not allowed")
	}
	return nil
}
