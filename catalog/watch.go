package catalog

import (
	"bytes"
	"context"
	"fmt"
	"github.com/octoacme/octoroll/model"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// debounce is how long the watcher waits after the last file-system event before it
// reads the file: editors and ConfigMap updates write in several steps.
const debounce = 100 * time.Millisecond

// Status is the watcher's report (plain data in model, for the admin API's wire types).
type Status = model.CatalogStatus

// Watcher keeps the catalog loaded from a file current. A bad reload keeps the last good
// catalog. Safe for concurrent use.
type Watcher struct {
	path     string
	log      *zap.Logger
	onChange func(*Catalog)

	reloadMu sync.Mutex // serialises reloads and onChange calls
	mu       sync.Mutex // guards the fields below
	current  *Catalog
	data     []byte // the bytes current was parsed from
	badData  []byte // the bytes of the last failed load, to report a bad file once
	status   Status
	attempts int // reads of the file, for tests
	now      func() time.Time
}

// NewWatcher loads the catalog at path; an invalid file is an error. onChange (may be
// nil) is called with each new catalog after a successful reload that changed it, never
// for the initial load, never concurrently with itself, and from the goroutine that
// reloaded (Run's or Reload's caller); it must not call Reload.
func NewWatcher(path string, log *zap.Logger, onChange func(*Catalog)) (*Watcher, error) {
	if log == nil {
		log = zap.NewNop()
	}
	w := &Watcher{path: path, log: log.Named("catalog"), onChange: onChange, now: time.Now}
	data, c, err := w.read()
	if err != nil {
		return nil, err
	}
	w.current, w.data = c, data
	w.status.LastLoaded = w.now()
	w.status.Generation = 1
	w.log.Info("catalog loaded", zap.String("path", path), zap.Int("services", len(c.Services)))
	return w, nil
}

func (w *Watcher) read() ([]byte, *Catalog, error) {
	data, err := os.ReadFile(w.path)
	if err != nil {
		return nil, nil, fmt.Errorf("load catalog: %w", err)
	}
	c, err := Parse(w.path, data)
	if err != nil {
		return data, nil, err
	}
	return data, c, nil
}

// Current returns the last good catalog. Callers must not modify it.
func (w *Watcher) Current() *Catalog {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Status returns the reload history.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Reload reads the file now (the daemon calls it on SIGHUP). On error the last good
// catalog stays current, the error is logged at Warn and counted, and returned; the
// caller need not log it again.
func (w *Watcher) Reload() error { return w.reload(true) }

// reload loads the file. explicit reloads report every failure; reloads triggered by
// file events report a given bad content once, since unrelated events in the directory
// would otherwise repeat the same warning.
func (w *Watcher) reload(explicit bool) error {
	w.reloadMu.Lock()
	defer w.reloadMu.Unlock()

	data, c, err := w.read()
	now := w.now()
	w.mu.Lock()
	w.attempts++
	if err != nil {
		repeat := data != nil && w.badData != nil && bytes.Equal(data, w.badData)
		if repeat && !explicit {
			w.mu.Unlock()
			return err
		}
		w.badData = data
		w.status.LastError = err.Error()
		w.status.LastErrorAt = now
		w.status.ReloadErrors++
		w.status.Failing = true
		w.mu.Unlock()
		w.log.Warn("catalog reload failed; keeping the previous catalog",
			zap.String("path", w.path), zap.Error(err))
		return err
	}
	w.badData = nil
	w.status.Failing = false
	w.status.LastLoaded = now
	if bytes.Equal(data, w.data) || reflect.DeepEqual(c, w.current) {
		// Same bytes, or only comments and layout changed.
		w.data = data
		w.mu.Unlock()
		w.log.Debug("catalog unchanged", zap.String("path", w.path))
		return nil
	}
	w.current, w.data = c, data
	w.status.Generation++
	gen := w.status.Generation
	w.mu.Unlock()
	w.log.Info("catalog reloaded", zap.String("path", w.path),
		zap.Int("generation", gen), zap.Int("services", len(c.Services)))
	if w.onChange != nil {
		w.onChange(c)
	}
	return nil
}

// Run watches the file's directory until ctx is done and reloads after changes. It
// watches the directory, not the file, so that an editor's write-and-rename and a
// Kubernetes ConfigMap symlink swap (which replace the file rather than write to it)
// are seen. It returns nil when ctx ends, or an error if the watch cannot be set up.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch catalog: %w", err)
	}
	defer fw.Close()
	dir := filepath.Dir(w.path)
	if err := fw.Add(dir); err != nil {
		return fmt.Errorf("watch catalog directory %s: %w", dir, err)
	}
	w.log.Info("watching catalog", zap.String("path", w.path), zap.String("dir", dir))
	// The file may have changed between the initial load and the watch.
	_ = w.reload(false)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			// Any other event in the directory may have replaced the file: a ConfigMap
			// swap renames "..data", not the file. Reading is cheap and unchanged
			// content is ignored.
			timer.Reset(debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			// Typically an event-queue overflow: events may be lost, so read anyway.
			w.log.Warn("catalog watch error", zap.String("path", w.path), zap.Error(err))
			timer.Reset(debounce)
		case <-timer.C:
			_ = w.reload(false)
		}
	}
}
