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

// debounce is how long the watcher waits after the last file-system event on the
// catalog before it reads the file: editors and ConfigMap updates write in several steps.
const debounce = 100 * time.Millisecond

// retryEvery is how often Run offers a refused catalog again: it is applied as soon as
// what blocked it (an active rollout, say) is gone.
const retryEvery = time.Second

// configMapData is the symlink a Kubernetes ConfigMap volume swaps on an update: the
// catalog file is a link through it and never changes itself.
const configMapData = "..data"

// Status is the watcher's report (plain data in model, for the admin API's wire types).
type Status = model.CatalogStatus

// Watcher keeps the catalog loaded from a file current. A bad reload keeps the last good
// catalog; a catalog the onChange callback refuses keeps the last applied one and is
// offered again until it is applied. Safe for concurrent use.
type Watcher struct {
	path     string
	log      *zap.Logger
	onChange func(*Catalog) error

	reloadMu sync.Mutex // serialises reloads and onChange calls
	mu       sync.Mutex // guards the fields below
	current  *Catalog
	data     []byte // the bytes current was parsed from
	badData  []byte // the bytes of the last failed load, to report a bad file once
	// pending is the valid catalog on disk that onChange refused, and its bytes.
	pending     *Catalog
	pendingData []byte
	status      Status
	attempts    int // reads of the file, for tests
	now         func() time.Time
}

// NewWatcher loads the catalog at path; an invalid file is an error. onChange (may be
// nil) is offered each new catalog after a reload that changed it, never the initial
// load, never concurrently with itself, and from the goroutine that reloaded (Run's or
// Reload's caller); it must not call Reload. The catalog becomes current only when
// onChange returns nil; its error refuses the catalog: the previous one stays current,
// Status reports the refusal, and the catalog is offered again (once a second while Run
// runs, and on every Reload) until onChange accepts it or the file changes.
func NewWatcher(path string, log *zap.Logger, onChange func(*Catalog) error) (*Watcher, error) {
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

// Current returns the catalog in use. Callers must not modify it.
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

// Reload reads the file now (the daemon calls it on SIGHUP). On error (an invalid file,
// or a valid catalog onChange refused) the catalog in use stays current, the error is
// logged at Warn and counted, and returned; the caller need not log it again. A file
// whose catalog was refused before is offered to onChange again.
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
		// The refused catalog is no longer what the file says: it is not offered again.
		w.clearPendingLocked()
		repeat := data != nil && w.badData != nil && bytes.Equal(data, w.badData)
		if repeat && !explicit {
			w.mu.Unlock()
			return err
		}
		w.badData = data
		w.status.LastError = model.RedactText(err.Error())
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
	if bytes.Equal(data, w.data) || reflect.DeepEqual(c, w.current) {
		// Same bytes, or only comments and layout changed: the file is (again) the
		// catalog in use, and one refused before is no longer wanted.
		w.data = data
		w.status.LastLoaded = now
		w.clearPendingLocked()
		w.mu.Unlock()
		w.log.Debug("catalog unchanged", zap.String("path", w.path))
		return nil
	}
	w.mu.Unlock()
	return w.apply(c, data, now, explicit)
}

// apply offers c (read from data at the time at) to onChange and makes it current
// unless refused. The caller holds reloadMu.
func (w *Watcher) apply(c *Catalog, data []byte, at time.Time, explicit bool) error {
	var err error
	if w.onChange != nil {
		err = w.onChange(c)
	}
	w.mu.Lock()
	if err != nil {
		why := err.Error()
		// A refusal is reported once per reason, not on each retry.
		first := why != w.status.Refused
		if w.status.Refused == "" {
			w.status.RefusedSince = at
		}
		w.pending, w.pendingData = c, data
		w.status.Refused = why
		if first {
			w.status.ReloadErrors++
		}
		w.mu.Unlock()
		if first || explicit {
			w.log.Warn("catalog not applied, the previous one keeps serving until it is allowed",
				zap.String("path", w.path), zap.String("refused", why))
		}
		return fmt.Errorf("catalog not applied, the previous one keeps serving until it is allowed: %w", err)
	}
	w.current, w.data = c, data
	w.clearPendingLocked()
	w.status.LastLoaded = at
	w.status.Generation++
	gen := w.status.Generation
	w.mu.Unlock()
	w.log.Info("catalog reloaded", zap.String("path", w.path),
		zap.Int("generation", gen), zap.Int("services", len(c.Services)))
	return nil
}

func (w *Watcher) clearPendingLocked() {
	w.pending, w.pendingData = nil, nil
	w.status.Refused, w.status.RefusedSince = "", time.Time{}
}

// retryPending offers the refused catalog to onChange again, if there is one.
func (w *Watcher) retryPending() {
	w.reloadMu.Lock()
	defer w.reloadMu.Unlock()
	w.mu.Lock()
	c, data := w.pending, w.pendingData
	w.mu.Unlock()
	if c != nil {
		_ = w.apply(c, data, w.now(), false)
	}
}

// watchSet is what Run reacts to: per directory, the names in it whose changes may
// change what the catalog path reads. Directories are keyed (and watched) by their real
// path, so that two ways to one directory are one watch and events name it one way.
type watchSet map[string]map[string]bool

func (s watchSet) add(path string) {
	dir, name := realDir(filepath.Dir(path)), filepath.Base(path)
	if s[dir] == nil {
		s[dir] = map[string]bool{}
	}
	s[dir][name] = true
}

// has reports whether an event's path (in a directory watched by its real path) is one
// of the set's names.
func (s watchSet) has(path string) bool {
	return s[filepath.Clean(filepath.Dir(path))][filepath.Base(path)]
}

// realDir is dir with every symlink resolved, or dir cleaned when it cannot be.
func realDir(dir string) string {
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return r
	}
	return filepath.Clean(dir)
}

// watched is the catalog file's own name and a ConfigMap's "..data" beside it; when the
// file is a symlink, each link on the way to the file it names and that file too, so
// that a change of the link's target (or of the target's content) is seen.
func (w *Watcher) watched() watchSet {
	s := watchSet{}
	s.add(w.path)
	s.add(filepath.Join(filepath.Dir(w.path), configMapData))
	p := w.path
	for range 40 { // the kernel's own bound on links followed
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			break
		}
		target, err := os.Readlink(p)
		if err != nil {
			break
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		s.add(target)
		p = target
	}
	if final, err := filepath.EvalSymlinks(w.path); err == nil {
		s.add(final)
	}
	return s
}

// Run watches the catalog until ctx is done and reloads after changes, and offers a
// refused catalog again once a second. It watches the file's directory, not the file,
// so that an editor's write-and-rename and a Kubernetes ConfigMap symlink swap (which
// replace the file rather than write to it) are seen, and reacts only to the names that
// can change what the path reads (see watched): other files in the directory, however
// busy, never delay a reload. It returns nil when ctx ends, or an error if the watch
// cannot be set up.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch catalog: %w", err)
	}
	defer fw.Close()
	dir := realDir(filepath.Dir(w.path))
	if err := fw.Add(dir); err != nil {
		return fmt.Errorf("watch catalog directory %s: %w", dir, err)
	}
	dirs := map[string]bool{dir: true}
	var set watchSet
	// follow re-reads the links: a link's target may have moved to another directory.
	follow := func() {
		set = w.watched()
		for d := range set {
			if dirs[d] {
				continue
			}
			if err := fw.Add(d); err != nil {
				w.log.Debug("watch catalog link target directory", zap.String("dir", d), zap.Error(err))
				continue
			}
			dirs[d] = true
		}
		for d := range dirs {
			if set[d] == nil && d != dir {
				_ = fw.Remove(d)
				delete(dirs, d)
			}
		}
	}
	follow()
	w.log.Info("watching catalog", zap.String("path", w.path), zap.String("dir", dir))
	// The file may have changed between the initial load and the watch.
	_ = w.reload(false)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod || !set.has(ev.Name) {
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			// Typically an event-queue overflow: events may be lost, so read anyway.
			w.log.Warn("catalog watch error", zap.String("path", w.path), zap.Error(err))
			timer.Reset(debounce)
		case <-timer.C:
			// Watch where the links lead now before reading: a write after the read
			// is then seen.
			follow()
			_ = w.reload(false)
		case <-retry.C:
			w.retryPending()
		}
	}
}
