package store

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// NewID returns a rollout id of the form service-YYYYMMDD-HHMMSS-xxxxxxxx:
// the UTC start time, then 32 random bits. Ids of one service sort by start
// time (to the second).
func NewID(now time.Time, service string) string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	return service + "-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
