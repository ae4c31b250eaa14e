package model

import (
	"fmt"
	"unicode/utf8"
)

// Lengths of free-text fields, in bytes. Each is the one limit of its field: the admin
// API answers a longer value 400 naming the field, and the engine's validation refuses
// it too.
const (
	// MaxActorLen bounds who acted: a token's name or X-Octoroll-Actor.
	MaxActorLen = 128
)

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
