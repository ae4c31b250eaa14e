package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

	mu     sync.Mutex
	refuse error // onChange's answer while set
	offers int   // catalogs offered to onChange
}

// setRefuse makes onChange refuse every catalog with err (nil: accept).
func (f *fixture) setRefuse(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = err
}

func (f *fixture) offered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.offers
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
	w, err := NewWatcher(path, zap.New(core), func(c *Catalog) error {
		f.mu.Lock()
		f.offers++
		err := f.refuse
		f.mu.Unlock()
		if err != nil {
			return err
		}
		f.changes <- c
		return nil
	})
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
	// The same bad content written again is read again: no new report.
	before := f.attempts()
	replaceFile(t, f.path, badYAML)
	waitFor(t, "the rewrite to re-read the file", func() bool { return f.attempts() > before })
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

// TestWatchIgnoresBusyNeighbour: a log file beside the catalog, written every 10 ms, does
// not hold up the reload of a catalog change (each of its events used to restart the
// debounce, delaying the reload for as long as the log was written).
func TestWatchIgnoresBusyNeighbour(t *testing.T) {
	f := newFixture(t, catalogYAML(9001))
	f.run(t)
	logPath := filepath.Join(filepath.Dir(f.path), "octoroll.log")
	stop := make(chan struct{})
	done := make(chan struct{})
	var writes atomic.Int64
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := os.WriteFile(logPath, fmt.Appendf(nil, "line %d\n", i), 0o644); err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	waitFor(t, "the log writer to run", func() bool { return writes.Load() >= 5 })
	before := f.attempts()

	replaceFile(t, f.path, catalogYAML(9002))
	if c := f.nextChange(t); endpointPort(c) != 9002 {
		t.Errorf("port %d, want 9002", endpointPort(c))
	}
	writeFile(t, f.path, catalogYAML(9003))
	if c := f.nextChange(t); endpointPort(c) != 9003 {
		t.Errorf("port %d, want 9003", endpointPort(c))
	}
	t.Logf("%d log writes; %d catalog reads for 2 catalog changes", writes.Load(), f.attempts()-before)
}

// TestWatchSymlinkTarget: a catalog path that is a symlink to a file in another directory
// is reloaded when the target file changes and when the link is pointed elsewhere.
func TestWatchSymlinkTarget(t *testing.T) {
	linkDir, targetDir := t.TempDir(), t.TempDir()
	target := filepath.Join(targetDir, "real.yaml")
	writeFile(t, target, catalogYAML(9001))
	path := filepath.Join(linkDir, "catalog.yaml")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	f := newFixtureAt(t, path)
	f.run(t)

	writeFile(t, target, catalogYAML(9002))
	if c := f.nextChange(t); endpointPort(c) != 9002 {
		t.Errorf("after writing the target: port %d, want 9002", endpointPort(c))
	}
	// The link now names a file in a third directory; its later edits are seen too.
	other := filepath.Join(t.TempDir(), "next.yaml")
	writeFile(t, other, catalogYAML(9003))
	tmp := filepath.Join(linkDir, "catalog.yaml.tmp")
	if err := os.Symlink(other, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if c := f.nextChange(t); endpointPort(c) != 9003 {
		t.Errorf("after retargeting the link: port %d, want 9003", endpointPort(c))
	}
	writeFile(t, other, catalogYAML(9004))
	if c := f.nextChange(t); endpointPort(c) != 9004 {
		t.Errorf("after writing the new target: port %d, want 9004", endpointPort(c))
	}
}

// TestReloadRefused: a valid catalog the callback refuses is not reported as loaded: the
// previous one stays current, the status says "refused: <why>" (counted once however
// often it is offered again), and a reload of the same bytes offers it again and
// applies it once the callback takes it.
func TestReloadRefused(t *testing.T) {
	f := newFixture(t, catalogYAML(9001))
	good := f.w.Current()
	f.setRefuse(errors.New("it drops version v2, which active rollout r-1 serves"))

	writeFile(t, f.path, catalogYAML(9002))
	err := f.w.Reload()
	if err == nil || !strings.Contains(err.Error(), "it drops version v2") {
		t.Fatalf("Reload of a refused catalog = %v, want the refusal", err)
	}
	f.noChange(t)
	st := f.w.Status()
	if f.w.Current() != good || st.Generation != 1 || st.Failing || st.ReloadErrors != 1 || st.RefusedSince.IsZero() ||
		st.State() != "refused: it drops version v2, which active rollout r-1 serves" {
		t.Fatalf("after the refusal: current changed %t, status %+v, state %q", f.w.Current() != good, st, st.State())
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"state":"refused: it drops version v2`) {
		t.Errorf("status JSON %s, want the state in words", b)
	}
	// Offered again, refused for the same reason: reported once.
	f.w.retryPending()
	if err := f.w.Reload(); err == nil {
		t.Error("second Reload of the refused catalog succeeded")
	}
	if st := f.w.Status(); st.ReloadErrors != 1 || f.offered() != 3 {
		t.Errorf("after two more offers: %d errors counted, %d offers; want 1 and 3", st.ReloadErrors, f.offered())
	}

	// The same bytes, once allowed (a SIGHUP after the rollout ended), are applied.
	f.setRefuse(nil)
	if err := f.w.Reload(); err != nil {
		t.Fatalf("Reload once allowed: %v", err)
	}
	if c := f.nextChange(t); endpointPort(c) != 9002 || f.w.Current() != c {
		t.Errorf("applied port %d, current is it %t", endpointPort(c), f.w.Current() == c)
	}
	if st := f.w.Status(); st.Generation != 2 || st.Refused != "" || st.State() != "loaded" {
		t.Errorf("after applying: %+v", st)
	}

	// A refused catalog whose file goes back to the catalog in use is no longer on offer.
	f.setRefuse(errors.New("blocked"))
	writeFile(t, f.path, catalogYAML(9003))
	_ = f.w.Reload()
	writeFile(t, f.path, catalogYAML(9002))
	if err := f.w.Reload(); err != nil {
		t.Fatal(err)
	}
	offers := f.offered()
	f.w.retryPending()
	if st := f.w.Status(); st.Refused != "" || f.offered() != offers {
		t.Errorf("after the file went back: status %+v, %d offers (was %d)", st, f.offered(), offers)
	}
}

// TestWatchRetriesRefused: while Run runs, a refused catalog is applied by itself once
// the callback takes it, without a file change or a SIGHUP.
func TestWatchRetriesRefused(t *testing.T) {
	f := newFixture(t, catalogYAML(9001))
	f.setRefuse(errors.New("blocked by rollout r-1"))
	f.run(t)
	replaceFile(t, f.path, catalogYAML(9002))
	waitFor(t, "the refusal to be reported", func() bool { return f.w.Status().Refused != "" })
	if st := f.w.Status(); st.Generation != 1 || endpointPort(f.w.Current()) != 9001 {
		t.Fatalf("refused catalog applied: %+v", st)
	}
	f.setRefuse(nil) // the rollout ended
	if c := f.nextChange(t); endpointPort(c) != 9002 {
		t.Errorf("port %d, want 9002", endpointPort(c))
	}
	waitFor(t, "the accepted catalog to become current", func() bool { return f.w.Status().Generation == 2 })
	if st := f.w.Status(); st.State() != "loaded" || st.ReloadErrors != 1 {
		t.Errorf("after the retry: %+v", st)
	}
}
