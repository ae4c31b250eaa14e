package catalog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// catalogYAML is a valid catalog whose single version listens on port.
func catalogYAML(port int) string {
	return fmt.Sprintf(`services:
  - name: echo
    port: 10000
    stable: v1
    versions:
      - name: v1
        endpoints: ["127.0.0.1:%d"]
`, port)
}

const badYAML = `services:
  - name: echo
    port: 10000
    stable: v1
    versions:
      - name: v1
        endpoints: ["127.0.0.1:99999"]
`

func endpointPort(c *Catalog) uint32 { return c.Services[0].Versions[0].Endpoints[0].Port }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes content the way editors do: a new file renamed over the old one.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".swp"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	path    string
	w       *Watcher
	changes chan *Catalog
	logs    *observer.ObservedLogs
}

func newFixture(t *testing.T, initial string) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeFile(t, path, initial)
	return newFixtureAt(t, path)
}

func newFixtureAt(t *testing.T, path string) *fixture {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	f := &fixture{path: path, changes: make(chan *Catalog, 16), logs: logs}
	w, err := NewWatcher(path, zap.New(core), func(c *Catalog) { f.changes <- c })
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	return f
}

// run starts Run and stops it when the test ends.
func (f *fixture) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// nextChange waits for onChange, failing after a deadline.
func (f *fixture) nextChange(t *testing.T) *Catalog {
	t.Helper()
	select {
	case c := <-f.changes:
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("onChange not called within 10s; status %+v", f.w.Status())
		return nil
	}
}

func (f *fixture) noChange(t *testing.T) {
	t.Helper()
	select {
	case c := <-f.changes:
		t.Fatalf("unexpected onChange with %+v", c)
	default:
	}
}

func (f *fixture) attempts() int {
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	return f.w.attempts
}

func (f *fixture) warnings() int {
	return f.logs.FilterLevelExact(zapcore.WarnLevel).FilterMessage("catalog reload failed; keeping the previous catalog").Len()
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestNewWatcherRejectsBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeFile(t, path, badYAML)
	_, err := NewWatcher(path, zap.NewNop(), nil)
	if err == nil || !strings.Contains(err.Error(), path+":7:21: services[0].versions[0].endpoints[0]") {
		t.Errorf("NewWatcher(bad) = %v, want the positioned validation error", err)
	}
	if _, err := NewWatcher(filepath.Join(t.TempDir(), "absent.yaml"), nil, nil); err == nil {
		t.Error("NewWatcher(missing file) succeeded")
	}
}

func TestReloadGood(t *testing.T) {
	f := newFixture(t, catalogYAML(9001))
	if got := f.w.Status(); got.Generation != 1 || got.LastLoaded.IsZero() || got.ReloadErrors != 0 || got.Failing {
		t.Errorf("initial status %+v", got)
	}
	first := f.w.Current()

	writeFile(t, f.path, catalogYAML(9002))
	if err := f.w.Reload(); err != nil {
		t.Fatal(err)
	}
	c := f.nextChange(t)
	if endpointPort(c) != 9002 || f.w.Current() != c {
		t.Errorf("after reload: onChange got port %d, Current %p, want 9002 and the same catalog", endpointPort(c), f.w.Current())
	}
	if endpointPort(first) != 9001 {
		t.Error("reload modified the previous catalog")
	}
	if got := f.w.Status().Generation; got != 2 {
		t.Errorf("generation %d, want 2", got)
	}

	// Same content, and content that differs only in comments and layout: no change.
	if err := f.w.Reload(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.path, "# reformatted\n"+strings.ReplaceAll(catalogYAML(9002), "    port: 10000", "    port:   10000  # sidecar"))
	if err := f.w.Reload(); err != nil {
		t.Fatal(err)
	}
	f.noChange(t)
	if got := f.w.Status().Generation; got != 2 {
		t.Errorf("generation %d after unchanged reloads, want 2", got)
	}
}

func TestReloadBadKeepsPrevious(t *testing.T) {
	f := newFixture(t, catalogYAML(9001))
	good := f.w.Current()

	writeFile(t, f.path, badYAML)
	err := f.w.Reload()
	if err == nil || !strings.Contains(err.Error(), "port out of range") {
		t.Fatalf("Reload(bad) = %v", err)
	}
	f.noChange(t)
	if f.w.Current() != good {
		t.Error("a bad reload replaced the current catalog")
	}
	st := f.w.Status()
	if st.ReloadErrors != 1 || !st.Failing || st.LastErrorAt.IsZero() || st.Generation != 1 ||
		!strings.Contains(st.LastError, f.path+":7:21: services[0].versions[0].endpoints[0]") {
		t.Errorf("status after bad reload: %+v", st)
	}
	if n := f.warnings(); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}

	// A missing file is a failed reload too, not an empty catalog.
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	if err := f.w.Reload(); err == nil {
		t.Error("Reload of a removed file succeeded")
	}
	if f.w.Current() != good || f.w.Status().ReloadErrors != 2 {
		t.Errorf("after removal: status %+v", f.w.Status())
	}

	writeFile(t, f.path, catalogYAML(9003))
	if err := f.w.Reload(); err != nil {
		t.Fatal(err)
	}
	if c := f.nextChange(t); endpointPort(c) != 9003 {
		t.Errorf("port %d after repair, want 9003", endpointPort(c))
	}
	if st := f.w.Status(); st.Failing || st.LastError == "" || st.Generation != 2 {
		t.Errorf("status after repair: %+v (LastError stays as history)", st)
	}
}

func TestWatchFileWrite(t *testing.T) {
	f := newFixture(t, catalogYAML(9001))
	f.run(t)
	writeFile(t, f.path, catalogYAML(9002))
	if c := f.nextChange(t); endpointPort(c) != 9002 {
		t.Errorf("port %d, want 9002", endpointPort(c))
	}
	writeFile(t, f.path, catalogYAML(9003))
	if c := f.nextChange(t); endpointPort(c) != 9003 {
		t.Errorf("port %d, want 9003", endpointPort(c))
	}
}

func TestWatchRenameReplace(t *testing.T) {
	f := newFixture(t, catalogYAML(9001))
	f.run(t)
	replaceFile(t, f.path, catalogYAML(9002))
	if c := f.nextChange(t); endpointPort(c) != 9002 {
		t.Errorf("port %d, want 9002", endpointPort(c))
	}
	// The watch survives the replacement: a second edit is seen as well.
	replaceFile(t, f.path, catalogYAML(9003))
	if c := f.nextChange(t); endpointPort(c) != 9003 {
		t.Errorf("port %d, want 9003", endpointPort(c))
	}
}

// TestWatchConfigMapSwap replays how the kubelet updates a mounted ConfigMap: the file
// is a symlink through "..data", and an update points "..data" at a new directory by
// renaming a fresh symlink over it. The file itself never changes.
func TestWatchConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	mk := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "catalog.yaml"), content)
	}
	mk("..2024_01", catalogYAML(9001))
	if err := os.Symlink("..2024_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "catalog.yaml")
	if err := os.Symlink(filepath.Join("..data", "catalog.yaml"), path); err != nil {
		t.Fatal(err)
	}
	f := newFixtureAt(t, path)
	f.run(t)

	mk("..2024_02", catalogYAML(9002))
	if err := os.Symlink("..2024_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if c := f.nextChange(t); endpointPort(c) != 9002 {
		t.Errorf("port %d, want 9002", endpointPort(c))
	}
}

func TestWatchBadWriteKeepsPreviousAndWarnsOnce(t *testing.T) {
	f := newFixture(t, catalogYAML(9001))
	good := f.w.Current()
	f.run(t)

	// Written whole (rename over the old file): a plain write is a truncate then a write,
	// and a reader between the two sees an empty file — a second, different bad content.
	replaceFile(t, f.path, badYAML)
	waitFor(t, "the bad file to be reported", func() bool { return f.w.Status().ReloadErrors == 1 })
	if f.w.Current() != good {
		t.Error("a bad file replaced the current catalog")
	}
	// Unrelated activity in the directory re-reads the same bad file: no new report.
	before := f.attempts()
	writeFile(t, filepath.Join(filepath.Dir(f.path), "other.txt"), "x")
	waitFor(t, "the directory event to re-read the file", func() bool { return f.attempts() > before })
	if n := f.warnings(); n != 1 {
		t.Errorf("%d warnings after re-reading the same bad file, want 1", n)
	}
	replaceFile(t, f.path, catalogYAML(9002))
	if c := f.nextChange(t); endpointPort(c) != 9002 {
		t.Errorf("port %d, want 9002", endpointPort(c))
	}
	if n, errs := f.warnings(), f.w.Status().ReloadErrors; n != 1 || errs != 1 {
		t.Errorf("%d warnings and %d counted errors for one bad file, want 1 and 1", n, errs)
	}
}
