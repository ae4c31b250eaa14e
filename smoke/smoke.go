// Package smoke runs smoke tests and synthetic key flows: HTTP requests aimed at a
// rollout's canary version, judged by status, body and JSON fields. It turns a rollout's
// controller.HTTPCheck definitions into controller.CheckResult values for the loop's
// observation; the engine decides what a failure means.
//
// It imports controller for the types only; it must not import runner or xds (the pin
// header name is passed in).
package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/controller"
)

// Defaults.
const (
	// DefaultMaxBody is how much of a response body is read and judged.
	DefaultMaxBody = 1 << 20
	// DefaultConcurrency bounds the requests in flight in one Run.
	DefaultConcurrency = 8
	// excerptLen bounds the body excerpt in a failure's detail.
	excerptLen = 200
)

// Target is the canary version the checks aim at.
type Target struct {
	// Version is the canary version name: the pin header's value for requests through
	// the proxy.
	Version string
	// Endpoints are the canary's "host:port" addresses for direct requests.
	Endpoints []string
	// PinHeader is the request header that routes a request through the proxy to the
	// version it names (model.PinHeader).
	PinHeader string
}

// Options configure a Runner.
type Options struct {
	// Client sends the requests; default a client with its own transport that ignores
	// proxy environment variables (the canary is addressed directly). Its redirect
	// policy is replaced: redirects are never followed.
	Client *http.Client
	// MaxBody is how many bytes of a body are read; default DefaultMaxBody.
	MaxBody int64
	// Concurrency bounds the requests in flight in one Run; default DefaultConcurrency.
	Concurrency int
}

// Runner runs HTTP checks. It is safe for concurrent use.
type Runner struct {
	client  *http.Client
	log     *zap.Logger
	maxBody int64
	conc    int
}

// New returns a Runner; log may be nil.
func New(log *zap.Logger, opts Options) *Runner {
	if log == nil {
		log = zap.NewNop()
	}
	var c http.Client
	if opts.Client != nil {
		c = *opts.Client
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		c.Transport = tr
	}
	// A redirect is answered as it is: a smoke test of /login that gets a 302 to an
	// error page must not pass because the error page says 200.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	return &Runner{client: &c, log: log.Named("smoke"), maxBody: opts.MaxBody, conc: opts.Concurrency}
}

// Run sends every check to target and returns one result per check, in order. A check
// without URL goes to every canary endpoint directly and passes only when every
// endpoint passes; a check with URL is one request through the proxy with the pin
// header set to the canary version. Run never fails as a whole: a request that cannot
// be sent is a failed check naming why. Each request is bounded by its check's timeout
// and by ctx.
func (r *Runner) Run(ctx context.Context, checks []controller.HTTPCheck, target Target) []controller.CheckResult {
	type job struct {
		check, req int
		url        string
		endpoint   string // empty through the proxy
	}
	var jobs []job
	outcomes := make([][]outcome, len(checks))
	for i, c := range checks {
		if c.URL != "" {
			outcomes[i] = make([]outcome, 1)
			jobs = append(jobs, job{check: i, url: strings.TrimSuffix(c.URL, "/") + c.Path})
			continue
		}
		outcomes[i] = make([]outcome, len(target.Endpoints))
		for j, ep := range target.Endpoints {
			addr := ep
			if c.Port != 0 {
				host, _, err := net.SplitHostPort(ep)
				if err != nil {
					host = ep
				}
				addr = net.JoinHostPort(host, strconv.FormatUint(uint64(c.Port), 10))
			}
			jobs = append(jobs, job{check: i, req: j, url: "http://" + addr + c.Path, endpoint: addr})
		}
	}
	sem := make(chan struct{}, r.conc)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			o := r.do(ctx, checks[j.check], j.url, j.endpoint == "", target)
			o.where = j.endpoint
			if o.where == "" {
				o.where = "via " + checks[j.check].URL
			}
			outcomes[j.check][j.req] = o
		}()
	}
	wg.Wait()

	results := make([]controller.CheckResult, len(checks))
	for i, c := range checks {
		res := controller.CheckResult{Name: c.Name, Passed: true}
		var failed, passed []string
		for _, o := range outcomes[i] {
			res.Duration = max(res.Duration, o.took)
			if o.failure != "" {
				res.Passed = false
				failed = append(failed, o.where+": "+o.failure)
			} else {
				passed = append(passed, o.where+": status "+strconv.Itoa(o.status))
			}
		}
		switch {
		case len(outcomes[i]) == 0:
			res.Passed = false
			res.Detail = fmt.Sprintf("no endpoints of canary version %q to send it to", target.Version)
		case !res.Passed:
			res.Detail = strings.Join(failed, "; ")
			if len(outcomes[i]) > 1 {
				res.Detail = fmt.Sprintf("%d of %d endpoints failed: %s", len(failed), len(outcomes[i]), res.Detail)
			}
		default:
			res.Detail = strings.Join(passed, "; ")
		}
		r.log.Debug("check", zap.String("name", c.Name), zap.String("version", target.Version),
			zap.Bool("passed", res.Passed), zap.Duration("took", res.Duration), zap.String("detail", res.Detail))
		results[i] = res
	}
	return results
}

// outcome is one request's judgement.
type outcome struct {
	where   string
	status  int
	failure string // empty when the response met every expectation
	took    time.Duration
}

func (r *Runner) do(ctx context.Context, c controller.HTTPCheck, u string, viaProxy bool, target Target) outcome {
	ctx, cancel := context.WithTimeout(ctx, c.TimeoutOrDefault())
	defer cancel()
	start := time.Now()
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(c.Body)
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(c.MethodOrDefault()), u, body)
	if err != nil {
		return outcome{failure: fmt.Sprintf("build request: %v", err)}
	}
	for k, v := range c.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if viaProxy && target.PinHeader != "" {
		req.Header.Set(target.PinHeader, target.Version)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return outcome{failure: requestError(ctx, c, err), took: time.Since(start)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, r.maxBody+1))
	o := outcome{status: resp.StatusCode}
	if err != nil {
		o.took = time.Since(start)
		o.failure = fmt.Sprintf("status %d, reading the body: %s", resp.StatusCode, requestError(ctx, c, err))
		return o
	}
	o.took = time.Since(start)
	truncated := int64(len(data)) > r.maxBody
	if truncated {
		data = data[:r.maxBody]
	}
	o.failure = judge(c.Expect, resp, data, truncated, r.maxBody)
	return o
}

// requestError says why a request failed, naming a timeout as one.
func requestError(ctx context.Context, c controller.HTTPCheck, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no response within timeout %s", controller.Duration(c.TimeoutOrDefault()))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop the prefix repeating method and URL
	}
	return err.Error()
}

// judge returns why resp fails exp, or "" when it passes.
func judge(exp controller.HTTPExpect, resp *http.Response, body []byte, truncated bool, maxBody int64) string {
	status := resp.StatusCode
	okStatus := status >= 200 && status <= 299
	want := "2xx"
	if len(exp.Status) > 0 {
		okStatus = false
		var s []string
		for _, st := range exp.Status {
			okStatus = okStatus || st == status
			s = append(s, strconv.Itoa(st))
		}
		want = strings.Join(s, " or ")
	}
	if !okStatus {
		msg := fmt.Sprintf("status %d, want %s", status, want)
		if loc := resp.Header.Get("Location"); loc != "" && status >= 300 && status <= 399 {
			msg += fmt.Sprintf(" (redirect to %q not followed)", loc)
		}
		return msg + "; body " + excerpt(body)
	}
	if exp.BodyContains != "" && !bytes.Contains(body, []byte(exp.BodyContains)) {
		msg := fmt.Sprintf("status %d, body does not contain %q", status, exp.BodyContains)
		if truncated {
			msg += fmt.Sprintf(" in its first %d bytes", maxBody)
		}
		return msg + "; body " + excerpt(body)
	}
	if len(exp.JSON) == 0 {
		return ""
	}
	if truncated {
		return fmt.Sprintf("status %d, body larger than %d bytes: JSON fields not checked", status, maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Sprintf("status %d, body is not JSON (%v); body %s", status, err, excerpt(body))
	}
	for _, je := range exp.JSON {
		if why := checkField(doc, je); why != "" {
			return fmt.Sprintf("status %d, %s; body %s", status, why, excerpt(body))
		}
	}
	return ""
}

// checkField returns why doc does not have je, or "".
func checkField(doc any, je controller.JSONExpect) string {
	keys, err := controller.ParseJSONPath(je.Path)
	if err != nil {
		return fmt.Sprintf("JSON path %v", err)
	}
	v := doc
	for i, k := range keys {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[k]
			if !ok {
				return fmt.Sprintf("JSON field %q missing (no key %q)", je.Path, strings.Join(keys[:i+1], "."))
			}
			v = next
		case []any:
			n, err := strconv.Atoi(k)
			if err != nil || n < 0 || n >= len(x) {
				return fmt.Sprintf("JSON field %q missing (%q is not an index of an array of %d)", je.Path, k, len(x))
			}
			v = x[n]
		default:
			return fmt.Sprintf("JSON field %q missing (%q is a %s)", je.Path, strings.Join(keys[:i], "."), kind(v))
		}
	}
	got, ok := scalar(v)
	if !ok {
		return fmt.Sprintf("JSON field %q is a %s, want %q", je.Path, kind(v), je.Equals)
	}
	if got == je.Equals {
		return ""
	}
	if n, isNum := v.(json.Number); isNum && numbersEqual(string(n), je.Equals) {
		return ""
	}
	return fmt.Sprintf("JSON field %q is %s, want %q", je.Path, quoteIfString(v, got), je.Equals)
}

// scalar is the text form of a JSON scalar; false for objects and arrays.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	case nil:
		return "null", true
	}
	return "", false
}

func quoteIfString(v any, s string) string {
	if _, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return s
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	}
	return "null"
}

// numbersEqual compares two decimal numbers exactly (200 equals 200.0 and 2e2).
func numbersEqual(a, b string) bool {
	x, ok1 := new(big.Rat).SetString(a)
	y, ok2 := new(big.Rat).SetString(strings.TrimSpace(b))
	return ok1 && ok2 && x.Cmp(y) == 0
}

// excerpt is a bounded, quoted start of body for a failure's detail.
func excerpt(body []byte) string {
	if len(body) == 0 {
		return "empty"
	}
	b := body
	cut := len(b) > excerptLen
	if cut {
		b = b[:excerptLen]
		// Do not split the last rune.
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	s := strconv.Quote(string(b))
	if cut {
		s += fmt.Sprintf("… (%d bytes)", len(body))
	}
	return s
}
