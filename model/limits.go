package model

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Lengths of free-text fields, in bytes. Each is the one limit of its field: the admin
// API answers a longer value 400 naming the field, and the engine's validation refuses
// it too.
const (
	// MaxActorLen bounds who acted: a token's name, X-Octoroll-Actor, a waiver's by.
	MaxActorLen = 128
	// MaxReasonLen bounds a reason: of an operator command, of a waiver.
	MaxReasonLen = 1024
	// MaxLabelLen bounds short names that are not service or version names (their
	// rule is ValidateName): a release name, a check's name, a waived item.
	MaxLabelLen = 128
	// MaxTextLen bounds a paragraph: a release summary, a rollback plan, one item of the
	// release notes' lists, a reported check's detail.
	MaxTextLen = 4096
	// MaxGateBody bounds the start of a gate hook's response body kept in events and
	// reports (a hook's reason is a reason: MaxReasonLen).
	MaxGateBody = 1024
)

// MaxGateRetryAfter bounds the retryAfter of a hook's wait answer: a longer one is
// taken as this long, so a hook cannot silence itself for days.
const MaxGateRetryAfter = 15 * time.Minute

// CheckLength returns an error naming field when v is longer than max bytes or not
// UTF-8.
func CheckLength(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%s: %d bytes, at most %d allowed", field, len(v), max)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s: not valid UTF-8", field)
	}
	return nil
}
