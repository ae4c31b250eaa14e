package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/model"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/lint"
	"github.com/octoacme/octoroll/xds"
)

// MaxBodyBytes bounds every request body (1 MiB); a larger one is answered 413.
const MaxBodyBytes = 1 << 20

// ReportFunc builds the release report of a rollout from its events: the Markdown text
// and a JSON-serialisable document.
type ReportFunc func(r controller.Rollout, events []controller.Event) (markdown []byte, jsonDoc any)

// Options wire a Server. Only Backend is required; a nil func reports nothing.
type Options struct {
	Backend Backend
	// Proxies lists the connected proxies (xds.Server.Proxies).
	Proxies func() []xds.ProxyStatus
	// ProxyConfig returns what was sent to and ACKed by one proxy, false for an unknown
	// node id (xds.Server.ProxyConfig).
	ProxyConfig func(nodeID string) (xds.ProxyConfig, bool)
	// XDSStats returns the xDS server's counters (xds.Server.Stats).
	XDSStats func() xds.Stats
	// CatalogStatus returns the catalog reload status (catalog.Watcher.Status).
	CatalogStatus func() catalog.Status
	// Ready returns nil when the store is open, the catalog loaded and xDS serving. Its
	// error text is shown by /readyz and /api/v1/status.
	Ready func() error
	// Token is the single admin token (identity "admin", role admin), used when Tokens
	// is nil. With neither, mutations are refused unless the server is bound to
	// loopback.
	Token string
	// Tokens are the named tokens with roles (NewTokens); they take the place of Token.
	Tokens *Tokens
	// ReadTokenRequired makes reads (API, page, metrics) need a token of any role too;
	// /healthz and /readyz stay open.
	ReadTokenRequired bool
	// Addr is the listen address; Serve replaces it with the listener's address. It
	// decides whether the server is bound to loopback, and which Host headers name it.
	Addr string
	// AllowedHosts are further host names (or "*.example.com") that requests may name
	// in Host, and cross-origin mutations may come from: the names of a reverse proxy
	// or a DNS name of the server. Loopback names and the listen address are always
	// allowed.
	AllowedHosts []string
	// Report builds release reports; nil answers 503 on the report endpoint.
	Report ReportFunc
	// Registry receives the server's collectors (and Go and process collectors); nil
	// creates one.
	Registry *prometheus.Registry
	// Metrics are the counters the runner and notifier increment; nil creates them on
	// Registry.
	Metrics *Metrics
	// Version is the octoroll version shown by /api/v1/status.
	Version string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Leader, when set (several replicas), is the leader's admin URL and whether this
	// replica leads: a follower forwards every mutation to the leader (see forward).
	Leader func() (url string, leading bool)
	// Replicas, when set (several replicas), are the replicas and their leader for
	// the status (GET /api/v1/status and /services, the page).
	Replicas func() *api.Replicas
}

// Server is the admin HTTP server. Safe for concurrent use.
type Server struct {
	log      *zap.Logger
	opts     Options
	loopback atomic.Bool
	hosts    *hostGuard
	metrics  *Metrics
	handler  http.Handler
	pages    *pageState
}

// New returns a Server. It registers its collectors on opts.Registry; a collector
// already registered there is kept.
func New(log *zap.Logger, opts Options) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(opts.Registry)
	}
	redactStatus(&opts)
	if opts.Tokens == nil && opts.Token != "" {
		opts.Tokens, _ = NewTokens(TokenSource{Single: opts.Token}, log) // a value cannot fail to load
	}
	s := &Server{log: log.Named("admin"), opts: opts, metrics: opts.Metrics, pages: newPageState(opts.Backend), hosts: newHostGuard(opts.Addr, opts.AllowedHosts)}
	s.loopback.Store(IsLoopback(opts.Addr))
	registerCollectors(opts.Registry, s)
	s.handler = s.routes()
	if opts.Leader != nil {
		s.handler = forward(s.handler, opts.Leader)
	}
	return s
}

// Metrics returns the counters the runner and notifier increment.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler returns the HTTP handler of every route.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on lis until ctx ends, then shuts down gracefully (in-flight requests get
// up to 5 s). It returns nil after a shutdown caused by ctx.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.loopback.Store(IsLoopback(lis.Addr().String()))
	s.hosts.addBind(lis.Addr().String())
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.log.Info("admin server listening", zap.String("addr", lis.Addr().String()),
		zap.Bool("loopback", s.loopback.Load()), zap.Bool("tokens", s.opts.Tokens != nil),
		zap.Bool("readsNeedToken", s.readsNeedToken()))
	if !s.loopback.Load() && s.opts.Tokens == nil {
		s.log.Warn("the admin API listens beyond loopback without a token: anyone who reaches it reads every service, rollout and event, and mutations are refused; set OCTOROLL_ADMIN_TOKEN_FILE or OCTOROLL_ADMIN_TOKENS_FILE",
			zap.String("addr", lis.Addr().String()))
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("admin server shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server: %w", err)
	}
	return nil
}

// IsLoopback reports whether addr ("host:port" or a bare host) names a loopback address.
// An empty host or a wildcard address is not loopback.
func IsLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	read := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.Handle(pattern, s.readGate(s.apiHandler(h)))
	}
	mut := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.Handle(pattern, s.apiHandler(s.authorize(h)))
	}
	p := api.APIPrefix
	read("GET "+p+"/services", s.listServices)
	read("GET "+p+"/services/{name}", s.getService)
	mut("POST "+p+"/services/{name}/checks", s.reportCheck)
	mut("POST "+p+"/services/{name}/{action}", s.action)
	read("GET "+p+"/rollouts", s.listRollouts)
	mut("POST "+p+"/rollouts", s.startRollout)
	read("GET "+p+"/rollouts/{id}", s.getRollout)
	read("GET "+p+"/rollouts/{id}/report", s.report)
	read("GET "+p+"/events", s.listEvents)
	read("GET "+p+"/proxies", s.listProxies)
	read("GET "+p+"/proxies/{id}/config", s.proxyConfig)
	read("GET "+p+"/status", s.status)
	s.gateRoutes(read, mut)
	mux.Handle("GET /healthz", s.apiHandler(s.healthz))
	mux.Handle("GET /readyz", s.apiHandler(s.readyz))
	mux.Handle("GET /metrics", s.readGate(s.metricsHandler()))
	mux.Handle("GET /{$}", s.recoverer(s.readGate(http.HandlerFunc(s.page))))
	mux.Handle("GET /rollouts/{id}", s.recoverer(s.readGate(http.HandlerFunc(s.rolloutPage))))
	return s.recoverer(s.guard(jsonFallback(mux)))
}

// jsonFallback answers requests that match no route (404) or no method of a route
// (405) with a JSON error instead of ServeMux's plain text.
func jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusMethodNotAllowed:
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			writeError(w, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed,
				fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
		case http.StatusNotFound, 0:
			writeError(w, http.StatusNotFound, api.CodeNotFound, "no such endpoint: "+r.URL.Path)
		default: // redirects of ServeMux path cleaning
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
			_, _ = w.Write(rec.body.Bytes())
		}
	})
}

type headerRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}
func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(b)
}

// statusWriter remembers whether the response has started, so a recovered panic is
// answered only when nothing was written yet.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) { w.wrote = true; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverer turns a panic in h into a logged 500 JSON error.
func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic in admin handler", zap.String("method", r.Method),
				zap.String("path", r.URL.Path), zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			if !sw.wrote {
				writeError(sw, http.StatusInternalServerError, api.CodeInternal, "internal error")
			}
		}()
		h.ServeHTTP(sw, r)
	})
}

// apiHandler adapts a handler returning an error: the error is answered as JSON.
func (s *Server) apiHandler(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			status, code, msg := classify(err)
			if status >= 500 {
				s.log.Error("admin request failed", zap.String("method", r.Method),
					zap.String("path", r.URL.Path), zap.Error(err))
			} else {
				s.log.Debug("admin request refused", zap.String("method", r.Method),
					zap.String("path", r.URL.Path), zap.Int("status", status), zap.Error(err))
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="octoroll"`)
			}
			writeError(w, status, code, msg)
		}
	})
}

// readBody reads at most MaxBodyBytes of r's body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, api.CodeTooLarge,
				fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes))
		}
		return nil, errorf(http.StatusBadRequest, api.CodeBadRequest, "reading request body failed")
	}
	return b, nil
}

// body formats a request may be sent in.
const (
	formatJSON = "json"
	formatYAML = "yaml"
)

// bodyFormat returns the format of r's body from its Content-Type, which every mutation
// must send: a browser can send a cross-site form or a no-cors fetch only as
// text/plain, multipart/form-data or application/x-www-form-urlencoded, or with none.
func bodyFormat(r *http.Request, allowYAML bool) (string, error) {
	want := "application/json"
	if allowYAML {
		want += " or application/yaml"
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", errorf(http.StatusUnsupportedMediaType, api.CodeUnsupportedType,
			"Content-Type is required: send "+want+" (an empty body may be sent as application/json)")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", errorf(http.StatusUnsupportedMediaType, api.CodeUnsupportedType, "malformed Content-Type: send "+want)
	}
	switch mt {
	case "application/json":
		return formatJSON, nil
	case "application/yaml", "application/x-yaml", "text/yaml":
		if allowYAML {
			return formatYAML, nil
		}
	}
	return "", errorf(http.StatusUnsupportedMediaType, api.CodeUnsupportedType,
		fmt.Sprintf("unsupported Content-Type %q: send %s", clipHeader(mt), want))
}

// DecodeJSON decodes data into v strictly: unknown fields and trailing data are errors.
// Empty data is an error unless allowEmpty.
func DecodeJSON(data []byte, v any, allowEmpty bool) error {
	if len(bytes.TrimSpace(data)) == 0 {
		if allowEmpty {
			return nil
		}
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "empty request body")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "malformed JSON body: "+jsonErrorText(err))
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "malformed JSON body: trailing data after the JSON value")
	}
	return nil
}

func jsonErrorText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q: cannot use %s as %s", te.Field, te.Value, te.Type)
		}
		return fmt.Sprintf("cannot use %s as %s", te.Value, te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// DecodeSpec decodes a rollout spec in format (json or yaml) strictly, with the decoder
// of octoroll lint (lint.DecodeSpec). A panic on hostile input is answered as a
// malformed body.
func DecodeSpec(data []byte, format string) (spec controller.Spec, err error) {
	defer func() {
		if v := recover(); v != nil {
			spec, err = controller.Spec{}, errorf(http.StatusBadRequest, api.CodeBadRequest, "malformed request body")
		}
	}()
	if len(bytes.TrimSpace(data)) == 0 {
		return spec, errorf(http.StatusBadRequest, api.CodeBadRequest, "empty request body")
	}
	if format != formatYAML && !json.Valid(data) {
		// Said to be JSON and is not: the JSON parser's own words (YAML is sent as YAML).
		return spec, DecodeJSON(data, &struct{}{}, false)
	}
	// The decoder of octoroll lint: every problem names line:column and the field.
	spec, _, err = lint.DecodeSpec(specName, data)
	if err != nil {
		var msgs []string
		for _, e := range model.Unjoin(err) {
			msgs = append(msgs, e.Error())
		}
		return controller.Spec{}, errorf(http.StatusBadRequest, api.CodeBadRequest, "malformed rollout spec: "+strings.Join(msgs, "; "))
	}
	return spec, nil
}

// specName is the name a rollout spec's decoding problems give the request body, as
// lint gives the file's: "spec:7:16: stages[0].minWindow: ...".
const specName = "spec"
