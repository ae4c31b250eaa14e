package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/octoacme/octoroll/controller"
)

// EventIDHeader carries a notification's event id: the same event always has the same
// id, whichever replica sends it and however often, so that a receiver drops a
// repeat (a new leader resending what its predecessor sent before it recorded so).
const EventIDHeader = "X-Octoroll-Event-Id"

// EventID is ev's id: a digest of the event as recorded (its rollout, kind, time,
// stage, generation and reason).
func EventID(ev controller.Event) string {
	raw, _ := json.Marshal(ev)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}
