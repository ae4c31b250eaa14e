package model

import (
	"encoding/json"
	"time"
)

// CatalogStatus describes the reload history of a Watcher, for the admin API and metrics.
type CatalogStatus struct {
	// LastLoaded is when the catalog in use was last read (or found unchanged).
	LastLoaded time.Time `json:"lastLoaded"`
	// LastError is the most recent reload error; it stays after a later good reload so
	// the admin status keeps showing what went wrong (see Failing).
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// ReloadErrors counts reloads that left the catalog in use unchanged although the
	// file changed: invalid files and refused catalogs, each distinct one once.
	ReloadErrors int `json:"reloadErrors"`
	// Generation counts catalog changes: 1 after the initial load, +1 per change
	// applied.
	Generation int `json:"generation"`
	// Failing is true while the file on disk is invalid and the previous catalog is
	// still served.
	Failing bool `json:"failing"`
	// Refused says why the catalog on disk, valid as a file, was not applied (it drops
	// a version an active rollout serves, say); empty when the file's catalog is the
	// one in use. The previous catalog keeps serving and the refused one is offered
	// again until it is applied: once a second, and on every reload.
	Refused      string    `json:"refused,omitempty"`
	RefusedSince time.Time `json:"refusedSince,omitzero"`
}

// State is the catalog's state in words: "loaded", "failing: <error>" while the file on
// disk is invalid, or "refused: <why>" while a valid catalog waits to be applied.
func (s CatalogStatus) State() string {
	switch {
	case s.Failing:
		return "failing: " + s.LastError
	case s.Refused != "":
		return "refused: " + s.Refused
	}
	return "loaded"
}

// MarshalJSON writes the fields and the State in words ("state").
func (s CatalogStatus) MarshalJSON() ([]byte, error) {
	type fields CatalogStatus
	return json.Marshal(struct {
		fields
		State string `json:"state"`
	}{fields(s), s.State()})
}

// UnmarshalJSON reads what MarshalJSON writes; "state" follows from the other fields.
func (s *CatalogStatus) UnmarshalJSON(b []byte) error {
	type fields CatalogStatus
	var v struct {
		fields
		State string `json:"state"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = CatalogStatus(v.fields)
	return nil
}
