package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/octoacme/octoroll/admin/api"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
)

// maxResponse bounds a response body read by the client.
const maxResponse = 32 << 20

// client talks to the admin API.
type client struct {
	base  string // scheme://host[:port], no trailing slash
	token string
	actor string
	http  *http.Client
}

// apiError is an error response of the admin API.
type apiError struct {
	Status  int
	Message string
	Code    string
}

func (e *apiError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// unreachableError says the admin API could not be reached at all.
type unreachableError struct {
	Base string
	Err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the admin API at %s: %s — is `octoroll serve` running? set --server or OCTOROLL_SERVER",
		e.Base, cause(e.Err))
}

func (e *unreachableError) Unwrap() error { return e.Err }

// cause shortens a transport error to what a person acts on ("connection refused").
func cause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// request is one API call.
type request struct {
	method      string
	path        string // under /api/v1, starting with /
	query       url.Values
	body        []byte
	contentType string
	accept      string
}

// do performs req and returns the body of a 2xx response.
func (c *client) do(ctx context.Context, req request) ([]byte, error) {
	u := c.base + api.APIPrefix + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if req.body != nil {
		ct := req.contentType
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	accept := req.accept
	if accept == "" {
		accept = "application/json"
	}
	hr.Header.Set("Accept", accept)
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.actor != "" && req.method != http.MethodGet {
		hr.Header.Set(api.ActorHeader, c.actor)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &unreachableError{Base: c.base, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("read response of %s %s: %w", req.method, req.path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return b, nil
	}
	var e api.Error
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return nil, &apiError{Status: resp.StatusCode, Message: e.Error, Code: e.Code}
	}
	msg := strings.TrimSpace(string(b))
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return nil, &apiError{Status: resp.StatusCode, Message: "the server answered " + resp.Status + ": " + msg}
}

// getJSON performs a GET and decodes the JSON body into v; it returns the raw body too.
func (c *client) getJSON(ctx context.Context, path string, query url.Values, v any) ([]byte, error) {
	b, err := c.do(ctx, request{method: http.MethodGet, path: path, query: query})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode response of GET %s: %w", path, err)
	}
	return b, nil
}

// postJSON sends body as JSON and decodes the response into v.
func (c *client) postJSON(ctx context.Context, path string, body, v any) ([]byte, error) {
	in, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	b, err := c.do(ctx, request{method: http.MethodPost, path: path, body: in})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode response of POST %s: %w", path, err)
	}
	return b, nil
}
