package logging

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestValidateAndNew(t *testing.T) {
	for _, tc := range []struct{ format, level, want string }{
		{"json", "info", ""},
		{"console", "debug", ""},
		{"xml", "info", `log-format: "xml"`},
		{"json", "loud", "log-level:"},
	} {
		err := Validate(tc.format, tc.level)
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%q, %q) = %v, want %q", tc.format, tc.level, err, tc.want)
		}
		log, err := New(tc.format, tc.level)
		if (err == nil) != (tc.want == "") {
			t.Errorf("New(%q, %q) error = %v", tc.format, tc.level, err)
		}
		if log != nil {
			log.Sync()
		}
	}
}

func TestRedactingCore(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(Redacting(core)).With(zap.String("sink", "https://hooks.slack.com/services/T1/B1/SECRETWITH"))
	log.Warn(`post "https://hooks.example.com/hook?token=SECRETMSG" failed`,
		zap.Error(errors.New(`Post "https://hooks.example.com/x/SECRETERR": refused`)),
		zap.ByteString("body", []byte("https://h/a/SECRETBYTES")), zap.Int("n", 1))
	b, _ := json.Marshal(logs.All())
	for _, s := range []string{"SECRETWITH", "SECRETMSG", "SECRETERR", "SECRETBYTES"} {
		if strings.Contains(string(b), s) {
			t.Errorf("%s logged: %s", s, b)
		}
	}
	if !strings.Contains(string(b), "hooks.example.com/x/***") {
		t.Errorf("redacted URL not logged: %s", b)
	}
}
