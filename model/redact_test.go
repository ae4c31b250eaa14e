package model

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://hooks.slack.com/services/T0000AAAA/B0000BBBB/XXXXXXXXXXXXXXXXXXXXXXXX", "https://hooks.slack.com/services/***"},
		{"https://discord.com/api/webhooks/1234567890/abcDEF-token", "https://discord.com/api/webhooks/***"},
		{"https://outlook.office.com/webhookb2/0a1b-2c@3d4e/IncomingWebhook/5f6a/7b8c", "https://outlook.office.com/webhookb2/***"},
		{"https://hooks.example.com:8443/notify?token=s3cret&x=1", "https://hooks.example.com:8443/notify?token=***&x=***"},
		{"https://user:pa55word@hooks.example.com/notify", "https://***@hooks.example.com/notify"},
		{"http://127.0.0.1:9/hook/abc123#frag", "http://127.0.0.1:9/hook/***#***"},
		{"http://10.0.0.1:8080/healthz", "http://10.0.0.1:8080/healthz"},
		{"https://hooks.example.com/notify?s3cr3t", "https://hooks.example.com/notify?***"},
		{"https://hooks.example.com/notify?Api%20Key=v", "https://hooks.example.com/notify?***=***"},
		{"hooks.slack.com/services/T0/B0/XXXX", "hooks.slack.com/services/***"},
		{"not a url", "***"},
		{"https://h/%zz/secret", "https://h/***"},
		{"", ""},
	} {
		if got := RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRedactText(t *testing.T) {
	const hook = "https://user:pw-SECRET1@hooks.example.com/services/T0/B0/SECRET2xyz?token=SECRET3"
	in := `post "` + hook + `": dial tcp: refused; receiver said: bad token SECRET3 for SECRET2xyz, pw-SECRET1; probe http://10.0.0.1:8080/healthz ok`
	got := RedactText(in, hook)
	for _, s := range []string{"SECRET1", "SECRET2", "SECRET3"} {
		if strings.Contains(got, s) {
			t.Errorf("%s left in %q", s, got)
		}
	}
	for _, keep := range []string{"https://***@hooks.example.com/services/***", "dial tcp: refused", "http://10.0.0.1:8080/healthz"} {
		if !strings.Contains(got, keep) {
			t.Errorf("%q lost from %q", keep, got)
		}
	}
	// Without the known URL, URLs are still found in the text.
	if got := RedactText("sink url \"https://hooks.slack.com/services/T1/B1/SECRET4\": no host"); strings.Contains(got, "SECRET4") {
		t.Errorf("SECRET4 left in %q", got)
	}
	if got := RedactText("nothing to hide"); got != "nothing to hide" {
		t.Errorf("plain text changed: %q", got)
	}
}
