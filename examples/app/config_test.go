package main

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    func(c config) bool
		wantErr []string // substrings of the error, all required
	}{
		{
			name: "defaults",
			want: func(c config) bool {
				return c.Service == "example" && c.Version == "v1" && c.GRPCAddr == ":50051" && c.HTTPAddr == ":8090" && c.ErrorRate == 0
			},
		},
		{
			name: "env",
			env:  map[string]string{"APP_SERVICE": "checkout", "APP_VERSION": "v2", "APP_ERROR_RATE": "0.08", "APP_LATENCY": "20ms", "APP_LATENCY_JITTER": "5ms", "APP_LATENCY_SIGMA": "0.6", "APP_SEED": "9"},
			want: func(c config) bool {
				return c.Service == "checkout" && c.Version == "v2" && c.ErrorRate == 0.08 && c.Latency == 20*time.Millisecond && c.LatencyJitter == 5*time.Millisecond && c.LatencySigma == 0.6 && c.Seed == 9
			},
		},
		{
			name: "flags override env",
			env:  map[string]string{"APP_VERSION": "v2", "APP_ERROR_RATE": "0.08"},
			args: []string{"--version", "v3", "--error-rate", "0", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"},
			want: func(c config) bool {
				return c.Version == "v3" && c.ErrorRate == 0 && c.GRPCAddr == "127.0.0.1:0"
			},
		},
		{
			name:    "every bad setting reported",
			args:    []string{"--service", "", "--error-rate", "1.5", "--latency", "-1s", "--latency-jitter", "-1ms", "--latency-sigma", "-0.1", "--http-addr", "nope", "--log-format", "xml", "--log-level", "loud"},
			wantErr: []string{"service:", "error-rate:", "latency:", "latency-jitter:", "latency-sigma:", "http-addr:", "log-format:", "log-level:"},
		},
		{name: "NaN error rate", args: []string{"--error-rate", "NaN"}, wantErr: []string{"error-rate:"}},
		{name: "NaN latency sigma", args: []string{"--latency-sigma", "NaN"}, wantErr: []string{"latency-sigma:"}},
		{name: "bad env", env: map[string]string{"APP_LATENCY": "soon"}, wantErr: []string{"environment:"}},
		{name: "stray argument", args: []string{"serve"}, wantErr: []string{"unexpected arguments"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := loadConfig("app", tc.args)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %v", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}
