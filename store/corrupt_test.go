package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const pageSize = 4096 // bbolt's page size on this platform; the tests only use it to find pages

// populated returns a state directory whose file holds a few rollouts,
// events and state documents, and is closed.
func populated(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		doc := fmt.Sprintf(`{"marker":"marker-doc-%02d","pad":%q}`, i, strings.Repeat("p", 300))
		if _, err := s.PutRollout(fmt.Sprintf("r%02d", i), fmt.Sprintf("svc%d", i%3), i >= 17, []byte(doc),
			[]Event{{Time: t0, Kind: "stage"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutState("weights/svc0", []byte(`{"canary":2500}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, FileName)
}

func mutate(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// overwritePagesWith overwrites the first n bytes of every page that contains
// marker (the live copy and any freed older copies).
func overwritePagesWith(marker string, n int, fill byte) func([]byte) []byte {
	return func(b []byte) []byte {
		for off := 0; ; {
			i := bytes.Index(b[off:], []byte(marker))
			if i < 0 {
				return b
			}
			page := (off + i) / pageSize * pageSize
			copy(b[page:page+n], bytes.Repeat([]byte{fill}, n))
			off = page + pageSize
		}
	}
}

// withBolt edits the file with bbolt directly, bypassing the store's checks.
func withBolt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptFileIsRefusedAndLeftAlone(t *testing.T) {
	tests := []struct {
		name       string
		corrupt    func(t *testing.T, path string)
		wantDetail string
	}{
		{"truncated to half", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"truncated inside the meta pages", func(t *testing.T, path string) {
			if err := os.Truncate(path, 100); err != nil {
				t.Fatal(err)
			}
		}, "not a readable bbolt file"},
		{"empty", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "empty"},
		{"garbage", func(t *testing.T, path string) {
			b := make([]byte, 64<<10)
			_, _ = rand.Read(b)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a readable bbolt file"},
		{"document bytes overwritten", func(t *testing.T, path string) {
			// Still valid JSON: only the checksum can tell.
			mutate(t, path, func(b []byte) []byte {
				return bytes.ReplaceAll(b, []byte("marker-doc-07"), []byte("marker-doc-99"))
			})
		}, `bucket rollouts key "r07": checksum mismatch`},
		{"leaf page header overwritten", func(t *testing.T, path string) {
			mutate(t, path, overwritePagesWith("marker-doc-07", 16, 0xff))
		}, "reading the file failed"},
		{"middle of a leaf page zeroed", func(t *testing.T, path string) {
			mutate(t, path, overwritePagesWith("marker-doc-03", pageSize/2, 0))
		}, ""},
		{"both meta pages zeroed", func(t *testing.T, path string) {
			mutate(t, path, func(b []byte) []byte {
				copy(b, make([]byte, 2*pageSize))
				return b
			})
		}, "not a readable bbolt file"},
		{"not an octoroll file", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			withBolt(t, path, func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket([]byte("other"))
				return err
			})
		}, "not an octoroll state file"},
		{"active index names a missing rollout", func(t *testing.T, path string) {
			withBolt(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketRollouts).Delete([]byte("r18")) })
		}, `active rollout of service "svc0" is "r18"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := populated(t)
			tc.corrupt(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			beforeInfo, _ := os.Stat(path)

			s, err := Open(dir, Options{LockTimeout: time.Second})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded on a corrupt file")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("error is not ErrCorrupt: %v", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name %s", path)
			}
			if !strings.Contains(err.Error(), tc.wantDetail) {
				t.Errorf("error does not say %q", tc.wantDetail)
			}

			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			afterInfo, _ := os.Stat(path)
			if !bytes.Equal(before, after) || !afterInfo.ModTime().Equal(beforeInfo.ModTime()) {
				t.Error("Open modified the corrupt file")
			}
			if _, err := os.Stat(path + ".new"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Open created a replacement file: %v", err)
			}
		})
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	dir, path := populated(t)
	withBolt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, encode([]byte("99")))
	})
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "schema version 99") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v, want an error naming %s and schema version 99", err, path)
	}
}
