package model

import (
	"regexp"
	"strings"
)

// Redacted replaces a secret in redacted text.
const Redacted = "***"

// RedactURL returns raw, a webhook or other URL, with what may be secret replaced by
// Redacted: the user info, every query value, the fragment, and the path from its
// first segment that is not a plain lower-case word on. Scheme, host, port and the
// leading words of the path stay, so that the sink can still be told apart:
//
//	https://hooks.slack.com/services/T0/B0/XXXX  -> https://hooks.slack.com/services/***
//	https://discord.com/api/webhooks/123/abc     -> https://discord.com/api/webhooks/***
//	https://user:pw@hooks.example/notify?token=s -> https://***@hooks.example/notify?token=***
//
// It never fails: text that is not a URL is redacted as a path would be.
func RedactURL(raw string) string {
	var b strings.Builder
	rest := raw
	if scheme, after, ok := strings.Cut(raw, "://"); ok && isScheme(scheme) {
		b.WriteString(scheme + "://")
		rest = after
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		authority := rest[:end]
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			b.WriteString(Redacted + "@")
			authority = authority[at+1:]
		}
		b.WriteString(authority)
		rest = rest[end:]
	}
	rest, fragment, hasFragment := strings.Cut(rest, "#")
	path, query, hasQuery := strings.Cut(rest, "?")
	b.WriteString(redactPath(path))
	if hasQuery {
		b.WriteByte('?')
		for i, pair := range strings.Split(query, "&") {
			if i > 0 {
				b.WriteByte('&')
			}
			key, _, ok := strings.Cut(pair, "=")
			switch {
			case !ok:
				b.WriteString(Redacted)
			case isPlainWord(key):
				b.WriteString(key + "=" + Redacted)
			default:
				b.WriteString(Redacted + "=" + Redacted)
			}
		}
	}
	if hasFragment && fragment != "" {
		b.WriteString("#" + Redacted)
	}
	return b.String()
}

// redactPath keeps the path's leading plain-word segments and replaces the rest.
func redactPath(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if s != "" && !isPlainWord(s) {
			return strings.Join(append(segs[:i:i], Redacted), "/")
		}
	}
	return path
}

// isPlainWord reports whether s reads as a word of a URL's structure ("services",
// "webhooks", "v2", "incoming-webhook") rather than an identifier or token: lower-case
// letters with - _ or ., at most one trailing digit, 24 characters at most.
func isPlainWord(s string) bool {
	if len(s) == 0 || len(s) > 24 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c == '-', c == '_', c == '.':
		case c >= '0' && c <= '9' && i == len(s)-1:
		default:
			return false
		}
	}
	return true
}

func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// urlInText finds URLs in free text: a scheme, "://" and everything up to white
// space or a quote.
var urlInText = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>` + "`" + `]+`)

// RedactText returns s with every URL in it redacted by RedactURL, and every secret
// part of the URLs of known (user info, secret path, query values), wherever it
// appears, replaced by Redacted. Error texts, event reasons and log messages go
// through it before they are stored or shown.
func RedactText(s string, known ...string) string {
	for _, raw := range known {
		if raw == "" {
			continue
		}
		s = strings.ReplaceAll(s, raw, RedactURL(raw))
		for _, part := range secretParts(raw) {
			s = strings.ReplaceAll(s, part, Redacted)
		}
	}
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, RedactURL)
}

// secretParts returns the pieces of raw that RedactURL hides, are no plain words and
// are long enough to be looked for in other text (4 characters or more).
func secretParts(raw string) []string {
	var out []string
	add := func(p string) {
		if len(p) >= 4 {
			out = append(out, p)
		}
	}
	rest := raw
	if _, after, ok := strings.Cut(raw, "://"); ok {
		rest = after
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
			user, pass, _ := strings.Cut(rest[:at], ":")
			add(pass)
			if !isPlainWord(user) {
				add(user)
			}
		}
		rest = rest[end:]
	}
	rest, fragment, _ := strings.Cut(rest, "#")
	add(fragment)
	path, query, _ := strings.Cut(rest, "?")
	for _, seg := range strings.Split(path, "/") {
		if seg != "" && !isPlainWord(seg) {
			add(seg)
		}
	}
	for _, pair := range strings.Split(query, "&") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			add(k)
			continue
		}
		add(v)
		if !isPlainWord(k) {
			add(k)
		}
	}
	return out
}
