package model

import "time"

// CatalogStatus describes the reload history of a Watcher, for the admin API and metrics.
type CatalogStatus struct {
	// LastLoaded is when the current catalog was last read successfully.
	LastLoaded time.Time `json:"lastLoaded"`
	// LastError is the most recent reload error; it stays after a later good reload so
	// the admin status keeps showing what went wrong (see Failing).
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// ReloadErrors counts failed reloads since start.
	ReloadErrors int `json:"reloadErrors"`
	// Generation counts catalog changes: 1 after the initial load, +1 per change.
	Generation int `json:"generation"`
	// Failing is true while the file on disk is invalid and the previous catalog is
	// still served.
	Failing bool `json:"failing"`
}
