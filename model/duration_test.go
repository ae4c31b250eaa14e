package model_test

import (
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/model"
)

func TestZeroableDuration(t *testing.T) {
	for in, want := range map[string]string{"0s": "", "0m": "", "45s": "", "1m30s": "",
		"0": "needs a unit", "30": "needs a unit", "-5s": "must not be negative", "soon": "want a duration"} {
		var d model.ZeroableDuration
		err := d.UnmarshalText([]byte(in))
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", in, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want an error saying %q", in, err, want)
		}
	}
	var d model.ZeroableDuration
	if err := d.UnmarshalText([]byte("45s")); err != nil || d.D() != 45*time.Second {
		t.Errorf("45s read as %s (%v)", d, err)
	}
	b, _ := model.ZeroableDuration(0).MarshalJSON()
	if err := d.UnmarshalJSON(b); err != nil || d != 0 {
		t.Errorf("0 through JSON: %s %v", d, err)
	}
}
