package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/octoacme/octoroll/internal/pagebench"
)

type pageResult struct {
	Services, Active, Clients, Events int
	Setup                             time.Duration
	LoadAvg                           string // /proc/loadavg when the run ended
	Rows                              []pagebench.Result
}

// runPage measures GET / and GET /api/v1/services of a real admin server over a real
// runner and store with services services, active of them rolling out, under clients
// concurrent clients.
func runPage(services, active, clients int) (*pageResult, error) {
	res := &pageResult{Services: services, Active: active, Clients: clients}
	t := time.Now()
	f, err := pagebench.New(services, active, 3)
	if err != nil {
		return res, err
	}
	defer f.Close()
	res.Setup, res.Events = time.Since(t), f.Events
	srv := httptest.NewServer(f.Handler)
	defer srv.Close()
	for _, path := range []string{"/", "/api/v1/services"} {
		// One warm-up request, then clients × 10 requests.
		if _, err := pagebench.Load(srv.URL, path, 1, 1); err != nil {
			return res, err
		}
		r, err := pagebench.Load(srv.URL, path, clients, clients*10)
		if err != nil {
			return res, fmt.Errorf("GET %s: %w", path, err)
		}
		res.Rows = append(res.Rows, r)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return res, nil
}
