// Package gate asks the blocking webhooks of a rollout (its gates) and reads their
// answers. It does the I/O only: the rollout engine decides what an answer does.
//
// # Request
//
// octoroll POSTs a JSON Request to the hook's URL with these headers:
//
//	Content-Type:         application/json
//	X-Octoroll-Gate:      the gate point (preRollout, confirmPromotion, postRollout, onRollback)
//	X-Octoroll-Gate-Id:   the request's id (also "id" in the body): the same for every
//	                      attempt of one question; an onRollback notification keeps
//	                      its id across restarts of octoroll, so a receiver told twice
//	                      (octoroll stopped before it recorded the answer) drops the
//	                      repeat
//	X-Octoroll-Timestamp: the time of the request in Unix seconds
//	X-Octoroll-Signature: sha256=HEX, the HMAC-SHA256 of TIMESTAMP + "." + BODY keyed
//	                      with the hook's shared secret (the contents of its secretFile)
//
// A receiver recomputes the signature over the timestamp header, a dot and the raw
// body, compares it in constant time, and refuses a timestamp older than a few minutes
// (Verify does all three, with MaxAge): a captured request cannot be replayed later.
//
// # Answer
//
// A 2xx response whose JSON body is an Answer: {"answer": "go"} passes, {"answer":
// "no-go", "reason": "…"} fails (the hook's onFail says what that does), {"answer":
// "wait", "reason": "…"} holds and is asked again at the next check, or, with
// "retryAfter": "5m" (a Go duration, at most model.MaxGateRetryAfter), not before that
// long has passed. Anything else
// gives no answer and holds, never passes: the hook unreachable, a timeout, a status
// other than 2xx, a body that is not the contract. Such a request is retried within
// the question (Webhook.Attempts, with backoff), except on a 4xx other than 408 and
// 429. The reason is kept up to model.MaxReasonLen bytes, the body up to
// model.MaxGateBody.
package gate

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/octoacme/octoroll/model"
)

// Request headers.
const (
	HeaderGate      = "X-Octoroll-Gate"
	HeaderID        = "X-Octoroll-Gate-Id"
	HeaderTimestamp = "X-Octoroll-Timestamp"
	HeaderSignature = "X-Octoroll-Signature"
	// SignaturePrefix starts the signature header's value.
	SignaturePrefix = "sha256="
)

// MaxAge is how old a request's timestamp Verify accepts by default.
const MaxAge = 5 * time.Minute

// maxRead bounds the response body read.
const maxRead = 64 << 10

// Request is the JSON body POSTed to a hook.
type Request struct {
	// ID identifies the question (X-Octoroll-Gate-Id): see RequestID.
	ID string `json:"id,omitempty"`
	// Point is the gate point; Hook the hook's name.
	Point string `json:"point"`
	Hook  string `json:"hook"`
	// RolloutID, Service, Stable and Canary identify the rollout.
	RolloutID string `json:"rolloutId"`
	Service   string `json:"service"`
	Stable    string `json:"stable"`
	Canary    string `json:"canary"`
	// Release is the release's name and type (patch, minor, major, breaking).
	Release Release `json:"release"`
	// State, Stage, StageName and CanaryWeight (out of 10000) are where the rollout is;
	// NextStage is where a go takes it (confirmPromotion).
	State        string `json:"state"`
	Stage        int    `json:"stage"`
	StageName    string `json:"stageName,omitempty"`
	CanaryWeight uint32 `json:"canaryWeight"`
	NextStage    string `json:"nextStage,omitempty"`
	// Reason is, at onRollback, why the rollout rolled back.
	Reason string `json:"reason,omitempty"`
	// Time is when the request was made; Attempt counts from 1 within one check.
	Time    time.Time `json:"time"`
	Attempt int       `json:"attempt"`
}

// Release names a release.
type Release struct {
	Name string `json:"name,omitempty"`
	Type string `json:"type,omitempty"`
}

// Answer is the JSON body a hook answers with.
type Answer struct {
	// Answer is go, no-go or wait.
	Answer string `json:"answer"`
	// Reason says why; recorded with the answer.
	Reason string `json:"reason,omitempty"`
	// RetryAfter is, with a wait, how long octoroll waits before asking again: a Go
	// duration ("90s", "5m"), at most model.MaxGateRetryAfter.
	RetryAfter string `json:"retryAfter,omitempty"`
}

// RequestID is the id of a question made of parts (rollout id, point, hook, ...): the
// first 16 bytes of their SHA-256, in hex. The same parts give the same id.
func RequestID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Sign returns the signature header value of body sent at timestamp (Unix seconds)
// with secret: "sha256=" and the hex HMAC-SHA256 of timestamp + "." + body.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return SignaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a request as a receiver would: signature is Sign(secret, timestamp,
// body) and timestamp is within maxAge of now (either way; 0 means MaxAge).
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, maxAge time.Duration) error {
	if maxAge <= 0 {
		maxAge = MaxAge
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %q is not Unix seconds", HeaderTimestamp, timestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxAge || d < -maxAge {
		return fmt.Errorf("%s: %s old, more than %s: a replay is refused", HeaderTimestamp, model.FormatDuration(d), model.FormatDuration(maxAge))
	}
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, timestamp, body))) {
		return fmt.Errorf("%s: does not match the body", HeaderSignature)
	}
	return nil
}

// ReadSecret reads a hook's shared secret from path, without surrounding white space.
func ReadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secretFile: %w", err)
	}
	s := bytes.TrimSpace(b)
	if len(s) == 0 {
		return nil, fmt.Errorf("secretFile %s: empty", path)
	}
	return s, nil
}

// Options tune a Client. Zero values take the defaults.
type Options struct {
	// Client sends the requests; default a client without a global timeout (each
	// hook's timeout applies per request) that follows no redirect.
	Client *http.Client
	// Now is the clock of the timestamps; default time.Now.
	Now func() time.Time
	// BackoffBase is the wait before the second attempt, doubling for each further one
	// up to 8 × BackoffBase; default 1s.
	BackoffBase time.Duration
	// UserAgent is sent with every request; default "octoroll".
	UserAgent string
}

// Client asks hooks. Safe for concurrent use.
type Client struct {
	opts Options
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "octoroll"
	}
	return &Client{opts: opts}
}

// Ask POSTs req to hook, retrying a request that got no answer, and returns what the
// hook answered (Answer error when it gave no answer; see the package comment). When
// ctx ends first, the answer is an error saying so.
func (c *Client) Ask(ctx context.Context, hook model.Webhook, req Request) model.GateAnswer {
	start := c.opts.Now()
	req.Hook = hook.Name
	out := model.GateAnswer{Hook: hook.Name, Point: req.Point, Answer: model.AnswerError}
	attempts := hook.AttemptsOrDefault()
	wait := c.opts.BackoffBase
	for i := 1; i <= attempts; i++ {
		if i > 1 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				out.Error = "cancelled: " + out.Error
				i = attempts + 1
				continue
			case <-t.C:
			}
			wait = min(2*wait, 8*c.opts.BackoffBase)
		}
		req.Attempt = i
		out.Attempts = i
		retry := c.once(ctx, hook, req, &out)
		if !retry {
			break
		}
	}
	out.At = c.opts.Now()
	out.Duration = model.Duration(out.At.Sub(start))
	return out
}

// once makes one request into out and reports whether a further attempt may help.
func (c *Client) once(ctx context.Context, hook model.Webhook, req Request, out *model.GateAnswer) (retry bool) {
	out.Answer, out.Reason, out.Status, out.Body, out.Error = model.AnswerError, "", 0, "", ""
	secret, err := ReadSecret(hook.SecretFile)
	if err != nil {
		out.Error = err.Error()
		return true // the file may appear (a secret mounted late)
	}
	req.Time = c.opts.Now().UTC()
	body, err := json.Marshal(req)
	if err != nil {
		out.Error = "encode request: " + err.Error()
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, hook.TimeoutOrDefault())
	defer cancel()
	hr, err := http.NewRequestWithContext(rctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		out.Error = "build request: " + err.Error()
		return false
	}
	ts := strconv.FormatInt(req.Time.Unix(), 10)
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", c.opts.UserAgent)
	hr.Header.Set(HeaderGate, req.Point)
	if req.ID != "" {
		hr.Header.Set(HeaderID, req.ID)
	}
	hr.Header.Set(HeaderTimestamp, ts)
	hr.Header.Set(HeaderSignature, Sign(secret, ts, body))
	resp, err := c.opts.Client.Do(hr)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			out.Error = "cancelled"
			return false
		case errors.Is(err, context.DeadlineExceeded) || rctx.Err() != nil:
			out.Error = fmt.Sprintf("timeout after %s", model.FormatDuration(hook.TimeoutOrDefault()))
		default:
			out.Error = "unreachable: " + shortErr(err)
		}
		return true
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRead))
	out.Status = resp.StatusCode
	out.Body = bounded(data)
	if err != nil {
		if rctx.Err() != nil {
			out.Error = fmt.Sprintf("timeout after %s reading the answer", model.FormatDuration(hook.TimeoutOrDefault()))
		} else {
			out.Error = "reading the answer: " + shortErr(err)
		}
		return true
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		out.Error = "HTTP " + strconv.Itoa(resp.StatusCode)
		c4 := resp.StatusCode >= 400 && resp.StatusCode < 500
		return !c4 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests
	}
	var a Answer
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&a); err != nil {
		out.Error = `not an answer: want a JSON body such as {"answer":"go"}`
		return true
	}
	switch a.Answer {
	case model.AnswerGo, model.AnswerNoGo, model.AnswerWait:
		var after time.Duration
		if a.RetryAfter != "" && a.Answer == model.AnswerWait {
			d, err := time.ParseDuration(a.RetryAfter)
			if err != nil || d < 0 {
				out.Error = fmt.Sprintf(`retryAfter %q: want a Go duration such as "5m"`, clip(a.RetryAfter, 40))
				return true
			}
			after = min(d, model.MaxGateRetryAfter)
		}
		out.Answer, out.Reason, out.RetryAfter = a.Answer, clip(strings.ToValidUTF8(a.Reason, "\uFFFD"), model.MaxReasonLen), model.Duration(after)
		return false
	}
	out.Error = fmt.Sprintf(`answer %q: want "go", "no-go" or "wait"`, clip(a.Answer, 40))
	return true
}

// bounded is the start of a response body for the records: at most MaxGateBody bytes,
// cut at a rune boundary, invalid UTF-8 replaced.
func bounded(b []byte) string {
	return clip(strings.ToValidUTF8(string(b), "\uFFFD"), model.MaxGateBody)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// shortErr is the last part of a transport error ("connection refused").
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		return s[i+2:]
	}
	return s
}
