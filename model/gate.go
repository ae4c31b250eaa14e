package model

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Gate points: where a rollout asks its blocking webhooks.
const (
	// GatePreRollout is asked before any weight moves: the rollout starts on a go.
	GatePreRollout = "preRollout"
	// GateConfirmPromotion is asked before each stage advance (the last one to 100 %
	// included): the stage advances on a go.
	GateConfirmPromotion = "confirmPromotion"
	// GatePostRollout is asked once the proxies ACKed 100 %: the monitoring window
	// closes (the rollout completes) only after a go.
	GatePostRollout = "postRollout"
	// GateOnRollback is told after a rollback, which never waits for it; its answers
	// are recorded.
	GateOnRollback = "onRollback"
)

// GatePoints lists the gate points in lifecycle order.
func GatePoints() []string {
	return []string{GatePreRollout, GateConfirmPromotion, GatePostRollout, GateOnRollback}
}

// Gate answers (GateAnswer.Answer): what a webhook's JSON body says, or what octoroll
// made of a request that got no answer.
const (
	AnswerGo   = "go"
	AnswerNoGo = "no-go"
	AnswerWait = "wait"
	// AnswerError records a request that got no answer: unreachable, a timeout, a
	// status other than 2xx, or a body that is not the answer contract. It holds, as
	// wait does: a gate never passes without a go.
	AnswerError = "error"
)

// What a gate's no-go does (Webhook.OnFail).
const (
	GateOnFailRollback = "rollback" // roll back (at preRollout: refuse the start; nothing moved)
	GateOnFailPause    = "pause"    // pause; a person resumes (the gate is asked again) or aborts
)

// Webhook defaults.
const (
	DefaultGateTimeout  = 10 * time.Second
	DefaultGateAttempts = 3
)

// Webhook is one blocking gate: an HTTP endpoint octoroll POSTs a signed JSON request
// to, which answers go, no-go or wait (see the gate package for the contract).
type Webhook struct {
	// Name identifies the hook in events and reports; unique among a rollout's hooks.
	Name string `yaml:"name" json:"name"`
	// URL is the http or https address the request is POSTed to.
	URL string `yaml:"url" json:"url"`
	// SecretFile is the path of a file holding the shared secret the request body is
	// signed with (HMAC-SHA256); read at every request, so a rotated secret applies at
	// once. Surrounding white space is ignored.
	SecretFile string `yaml:"secretFile" json:"secretFile"`
	// Timeout bounds one request, response included; default 10s.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Attempts is how many requests one check makes while the hook is unreachable,
	// times out or answers other than 2xx, with backoff between them; default 3. A
	// wait or no-go answer is not retried within the check.
	Attempts uint32 `yaml:"attempts,omitempty" json:"attempts,omitempty"`
	// OnFail is what a no-go does: rollback (default) or pause.
	OnFail string `yaml:"onFail,omitempty" json:"onFail,omitempty"`
}

// TimeoutOrDefault is w's timeout, 10s when unset.
func (w Webhook) TimeoutOrDefault() time.Duration {
	if w.Timeout <= 0 {
		return DefaultGateTimeout
	}
	return w.Timeout.D()
}

// AttemptsOrDefault is w's attempts, 3 when unset.
func (w Webhook) AttemptsOrDefault() int {
	if w.Attempts == 0 {
		return DefaultGateAttempts
	}
	return int(w.Attempts)
}

// OnFailOrDefault is w's no-go action, rollback when unset.
func (w Webhook) OnFailOrDefault() string {
	if w.OnFail == "" {
		return GateOnFailRollback
	}
	return w.OnFail
}

// Gates are the blocking webhooks of a rollout (or of a catalog service), by point.
type Gates struct {
	PreRollout       []Webhook `yaml:"preRollout,omitempty" json:"preRollout,omitempty"`
	ConfirmPromotion []Webhook `yaml:"confirmPromotion,omitempty" json:"confirmPromotion,omitempty"`
	PostRollout      []Webhook `yaml:"postRollout,omitempty" json:"postRollout,omitempty"`
	OnRollback       []Webhook `yaml:"onRollback,omitempty" json:"onRollback,omitempty"`
}

// At returns the hooks of point (nil for an unknown point).
func (g Gates) At(point string) []Webhook {
	switch point {
	case GatePreRollout:
		return g.PreRollout
	case GateConfirmPromotion:
		return g.ConfirmPromotion
	case GatePostRollout:
		return g.PostRollout
	case GateOnRollback:
		return g.OnRollback
	}
	return nil
}

// set returns a pointer to the hooks of point.
func (g *Gates) set(point string) *[]Webhook {
	switch point {
	case GatePreRollout:
		return &g.PreRollout
	case GateConfirmPromotion:
		return &g.ConfirmPromotion
	case GatePostRollout:
		return &g.PostRollout
	case GateOnRollback:
		return &g.OnRollback
	}
	return nil
}

// Empty reports whether g has no hook.
func (g Gates) Empty() bool {
	for _, p := range GatePoints() {
		if len(g.At(p)) > 0 {
			return false
		}
	}
	return true
}

// Merge returns g with the hooks of more appended at each point, except those whose
// name g already uses at that point (g's entry replaces more's).
func (g Gates) Merge(more Gates) Gates {
	var out Gates
	for _, p := range GatePoints() {
		own := g.At(p)
		dst := out.set(p)
		*dst = append([]Webhook(nil), own...)
		for _, w := range more.At(p) {
			dup := false
			for _, o := range own {
				dup = dup || o.Name == w.Name
			}
			if !dup {
				*dst = append(*dst, w)
			}
		}
		if len(*dst) == 0 {
			*dst = nil
		}
	}
	return out
}

// Validate reports every problem of g, each as "PREFIX.point[i].field: message", to add.
// Names are unique per point.
func (g Gates) Validate(prefix string, add func(field, msg string)) {
	for _, p := range GatePoints() {
		names := map[string]int{}
		for i, w := range g.At(p) {
			f := fmt.Sprintf("%s.%s[%d]", prefix, p, i)
			if prefix == "" {
				f = fmt.Sprintf("%s[%d]", p, i)
			}
			if err := ValidateName(w.Name); err != nil {
				add(f+".name", err.Error())
			} else if j, dup := names[w.Name]; dup {
				add(f+".name", fmt.Sprintf("%q: duplicate hook name, also %s[%d]", w.Name, p, j))
			} else {
				names[w.Name] = i
			}
			if err := ValidateHookURL(w.URL); err != nil {
				add(f+".url", err.Error())
			}
			if strings.TrimSpace(w.SecretFile) == "" {
				add(f+".secretFile", "required: the file holding the shared secret the requests are signed with")
			}
			if w.Timeout < 0 {
				add(f+".timeout", "must not be negative")
			}
			if w.Attempts > 10 {
				add(f+".attempts", fmt.Sprintf("%d: want 1-10", w.Attempts))
			}
			switch w.OnFail {
			case "", GateOnFailRollback, GateOnFailPause:
				if p == GateOnRollback && w.OnFail != "" {
					add(f+".onFail", "an onRollback hook cannot stop the rollback it is told about: leave onFail out")
				}
			default:
				add(f+".onFail", fmt.Sprintf("%q: want rollback or pause", w.OnFail))
			}
		}
	}
}

// ValidateHookURL checks a webhook address: absolute http or https with a host.
func ValidateHookURL(s string) error {
	if s == "" {
		return fmt.Errorf("required: the hook's http or https address")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%q: not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: want an http or https URL", s)
	case u.Host == "":
		return fmt.Errorf("%q: no host", s)
	}
	return nil
}

// GateAnswer is the outcome of asking one hook at one gate point: what it answered,
// with the HTTP status and the (bounded) body, for events and the release report.
type GateAnswer struct {
	Hook  string `json:"hook"`
	Point string `json:"point"`
	// Answer is go, no-go, wait or error (no answer: see AnswerError).
	Answer string `json:"answer"`
	// Reason is the hook's own reason, from its JSON answer (at most MaxReasonLen
	// bytes).
	Reason string `json:"reason,omitempty"`
	// RetryAfter is, with a wait, how long the hook asked octoroll to wait before
	// asking again (at most MaxGateRetryAfter).
	RetryAfter Duration `json:"retryAfter,omitempty"`
	// Status is the HTTP status of the last attempt (0: no response).
	Status int `json:"status,omitempty"`
	// Body is the start of the last response body (at most MaxGateBody bytes).
	Body string `json:"body,omitempty"`
	// Error says why there is no answer (unreachable, timeout, status, malformed body).
	Error string `json:"error,omitempty"`
	// Attempts is the number of requests made.
	Attempts int `json:"attempts,omitempty"`
	// Duration is how long asking took, retries and backoff included.
	Duration Duration `json:"duration,omitempty"`
	// At is when the answer was received.
	At time.Time `json:"at,omitzero"`
}

// Summary says the answer in a line: `hook "qa" (confirmPromotion) answered no-go:
// failing e2e`, `hook "qa" (preRollout) gave no answer: HTTP 500`.
func (a GateAnswer) Summary() string {
	s := fmt.Sprintf("hook %q (%s) ", a.Hook, a.Point)
	if a.Answer == AnswerError {
		s += "gave no answer"
		if a.Error != "" {
			s += ": " + a.Error
		}
		if a.Attempts > 1 {
			s += fmt.Sprintf(" (%d attempts)", a.Attempts)
		}
		return s
	}
	s += "answered " + a.Answer
	if a.Reason != "" {
		s += ": " + a.Reason
	}
	if a.Answer == AnswerWait && a.RetryAfter > 0 {
		s += " (retry after " + a.RetryAfter.String() + ")"
	}
	return s
}

// GatePending is a hook octoroll is asking in the background, or will ask again at
// RetryAt (a wait answer's retryAfter): no answer yet, so it holds.
type GatePending struct {
	Hook  string `json:"hook"`
	Point string `json:"point"`
	// RetryAt is when the hook is asked again; zero while a request is in flight.
	RetryAt time.Time `json:"retryAt,omitzero"`
}

// Summary says what the hook is waiting for: `asking hook "qa"`, `hook "qa" asked
// again at 2026-03-02T10:05:00Z (retryAfter)`.
func (p GatePending) Summary() string {
	if p.RetryAt.IsZero() {
		return fmt.Sprintf("asking hook %q", p.Hook)
	}
	return fmt.Sprintf("hook %q asked again at %s (retryAfter)", p.Hook, p.RetryAt.UTC().Format(time.RFC3339))
}

// Freeze stops every rollout start and stage advance on every service while it is in
// force: set by a person (octoroll freeze) or a freeze window of the catalog. Rollbacks,
// pauses and aborts still work.
type Freeze struct {
	Reason string `json:"reason"`
	// By is who froze (empty for a catalog window).
	By string `json:"by,omitempty"`
	// Since is when the freeze began (the window's start).
	Since time.Time `json:"since"`
	// Until is when a window ends; zero for a freeze set by a person (until lifted).
	Until time.Time `json:"until,omitzero"`
	// Window names the catalog freeze window; empty for a freeze set by a person.
	Window string `json:"window,omitempty"`
}

// Summary says the freeze in a line: "frozen by alice since …: incident 42".
func (f Freeze) Summary() string {
	s := "frozen"
	if f.Window != "" {
		s += " by freeze window " + f.Window
	} else if f.By != "" {
		s += " by " + f.By
	}
	s += " since " + f.Since.UTC().Format(time.RFC3339)
	if !f.Until.IsZero() {
		s += " until " + f.Until.UTC().Format(time.RFC3339)
	}
	if f.Reason != "" {
		s += ": " + f.Reason
	}
	return s
}

// FreezeWindow is a period of the catalog when no rollout starts or advances (a
// holiday, a sales event): from Start (inclusive) to End (exclusive).
type FreezeWindow struct {
	// Name identifies the window; unique among the catalog's windows.
	Name string `yaml:"name" json:"name"`
	// Start and End are RFC 3339 times ("2026-12-24T00:00:00Z").
	Start time.Time `yaml:"start" json:"start"`
	End   time.Time `yaml:"end" json:"end"`
	// Reason is shown with the freeze.
	Reason string `yaml:"reason" json:"reason"`
}

// Contains reports whether now is within w.
func (w FreezeWindow) Contains(now time.Time) bool {
	return !now.Before(w.Start) && now.Before(w.End)
}

// Freeze is w as a freeze in force.
func (w FreezeWindow) Freeze() Freeze {
	return Freeze{Reason: w.Reason, Since: w.Start, Until: w.End, Window: w.Name}
}

// ValidateFreezeWindows reports every problem of ws to add, each naming its field
// under prefix ("freezes").
func ValidateFreezeWindows(ws []FreezeWindow, prefix string, add func(field, msg string)) {
	names := map[string]int{}
	for i, w := range ws {
		f := fmt.Sprintf("%s[%d]", prefix, i)
		if strings.TrimSpace(w.Name) == "" {
			add(f+".name", "required")
		} else if j, dup := names[w.Name]; dup {
			add(f+".name", fmt.Sprintf("%q: duplicate freeze window name, also %s[%d]", w.Name, prefix, j))
		} else {
			names[w.Name] = i
		}
		if w.Start.IsZero() {
			add(f+".start", "required: an RFC 3339 time such as 2026-12-24T00:00:00Z")
		}
		if w.End.IsZero() {
			add(f+".end", "required: an RFC 3339 time such as 2026-12-27T00:00:00Z")
		}
		if !w.Start.IsZero() && !w.End.IsZero() && !w.End.After(w.Start) {
			add(f+".end", "must be after start")
		}
		if strings.TrimSpace(w.Reason) == "" {
			add(f+".reason", "required: shown with the freeze")
		} else if err := CheckLength(f+".reason", w.Reason, MaxReasonLen); err != nil {
			add(f+".reason", strings.TrimPrefix(err.Error(), f+".reason: "))
		}
	}
}

// ActiveFreezes returns the freezes in force at now: manual (set by a person, may be
// nil) first, then every window of ws containing now.
func ActiveFreezes(manual *Freeze, ws []FreezeWindow, now time.Time) []Freeze {
	var out []Freeze
	if manual != nil {
		out = append(out, *manual)
	}
	for _, w := range ws {
		if w.Contains(now) {
			out = append(out, w.Freeze())
		}
	}
	return out
}
