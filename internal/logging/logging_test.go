package logging

import (
	"strings"
	"testing"
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
