package admin

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/octoacme/octoroll/admin/api"
)

// forwardedHeader marks a request a follower forwarded, so that it is never forwarded
// twice (two replicas that each take the other for the leader).
const forwardedHeader = "X-Octoroll-Forwarded"

// forward serves reads locally and sends every mutation (any method but GET, HEAD and
// OPTIONS) that reaches a follower to the leader's admin API, headers (the bearer
// token) included, and answers with the leader's answer. With no leader known, or one
// that does not answer, it answers 503 not_leader, naming the leader when known.
func forward(h http.Handler, leader func() (string, bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			h.ServeHTTP(w, r)
			return
		}
		addr, leading := leader()
		if leading {
			h.ServeHTTP(w, r)
			return
		}
		if addr == "" || r.Header.Get(forwardedHeader) != "" {
			writeJSON(w, http.StatusServiceUnavailable, api.Error{Code: api.CodeNotLeader,
				Error: "this replica does not lead and no leader is known now (an election is under way or etcd is unreachable); retry shortly"})
			return
		}
		target, err := url.Parse(addr)
		if err != nil || target.Host == "" {
			writeJSON(w, http.StatusServiceUnavailable, api.Error{Code: api.CodeNotLeader,
				Error: fmt.Sprintf("this replica does not lead; the leader's admin address %q is not a URL", addr)})
			return
		}
		p := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = target.Host
				pr.Out.Header.Set(forwardedHeader, "1")
			},
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				writeJSON(w, http.StatusServiceUnavailable, api.Error{Code: api.CodeNotLeader,
					Error: fmt.Sprintf("this replica does not lead; the leader at %s did not answer: %v", addr, err)})
			},
		}
		p.ServeHTTP(w, r)
	})
}
