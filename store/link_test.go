package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenRefusesDanglingLink: a state file that is a symbolic link to a missing
// target (a volume not mounted) is refused, naming the link and its target, and left
// as it is: a new empty store in its place would lose the history. A link to an
// existing state file is followed.
func TestOpenRefusesDanglingLink(t *testing.T) {
	dir := t.TempDir()
	vol := filepath.Join(t.TempDir(), "volume")
	target := filepath.Join(vol, FileName)
	link := filepath.Join(dir, FileName)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if err == nil {
		t.Fatal("Open succeeded on a link to a missing target")
	}
	for _, want := range []string{link, target, "symbolic link", "will not create an empty store"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v is not ErrInvalid", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	if _, err := os.Stat(vol); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the target's directory was created: %v", err)
	}

	// A relative link is named with its resolved target.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("gone", FileName), link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "gone", FileName)) {
		t.Errorf("relative link: %v", err)
	}

	// The volume is back: the link is followed and the history is there.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	s := openT(t, vol)
	put(t, s, "r1", "checkout", true, `{"id":"r1"}`)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	if _, err := s.GetRollout("r1"); err != nil {
		t.Errorf("rollout through the link: %v", err)
	}
}
