package admin

import (
	"errors"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// Everything the admin server shows that may quote an error (event reasons, a
// rollout's reason, reload and publication errors, error responses) passes through
// model.RedactText first: a webhook's failure quotes its URL, whose path or query is
// its secret.

func redactEvent(e controller.Event) controller.Event {
	e.Reason = model.RedactText(e.Reason)
	return e
}

func redactRollout(r controller.Rollout) controller.Rollout {
	r.Reason = model.RedactText(r.Reason)
	return r
}

// redactStatus wraps the status sources of o so that their error texts are redacted
// wherever they are shown (API, page, metrics).
func redactStatus(o *Options) {
	if cs := o.CatalogStatus; cs != nil {
		o.CatalogStatus = func() catalog.Status {
			st := cs()
			st.LastError = model.RedactText(st.LastError)
			return st
		}
	}
	if ready := o.Ready; ready != nil {
		o.Ready = func() error {
			if err := ready(); err != nil {
				return errors.New(model.RedactText(err.Error()))
			}
			return nil
		}
	}
}
