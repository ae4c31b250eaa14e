package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func put(t *testing.T, s contract, id, service string, active bool, doc string, events ...Event) uint64 {
	t.Helper()
	seq, err := s.PutRollout(id, service, active, []byte(doc), events)
	if err != nil {
		t.Fatalf("PutRollout(%s, %s, %t): %v", id, service, active, err)
	}
	return seq
}

func TestOpenCreatesDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	s := openT(t, dir)
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700}, {filepath.Join(dir, FileName), 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, got, c.mode)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+".new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	if s.Path() != filepath.Join(dir, FileName) {
		t.Errorf("Path() = %q", s.Path())
	}
	if err := s.Ping(); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close = %v, want ErrClosed", err)
	}
}

func TestRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		s := b.openNew(t)

		doc := `{"stage":2,"weight":2500}`
		seq := put(t, s, "r1", "checkout", true, doc, Event{Time: t0, Kind: "started", Data: json.RawMessage(`{"by":"ops"}`)})
		if seq != 1 {
			t.Errorf("first event seq = %d, want 1", seq)
		}
		got, err := s.GetRollout("r1")
		if err != nil || string(got) != doc {
			t.Errorf("GetRollout = %s, %v; want %s", got, err, doc)
		}
		id, got, err := s.ActiveRollout("checkout")
		if err != nil || id != "r1" || string(got) != doc {
			t.Errorf("ActiveRollout = %q, %s, %v", id, got, err)
		}
		evs, _, err := s.Events(EventQuery{})
		if err != nil {
			t.Fatal(err)
		}
		want := []Event{{Seq: 1, Time: t0, RolloutID: "r1", Service: "checkout", Kind: "started", Data: json.RawMessage(`{"by":"ops"}`)}}
		if diff := cmp.Diff(want, evs); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}

		if err := s.PutState("known-good/checkout", []byte(`{"version":"v1"}`)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetState("known-good/checkout"); err != nil || string(got) != `{"version":"v1"}` {
			t.Errorf("GetState = %s, %v", got, err)
		}

		for name, err := range map[string]error{
			"GetRollout": func() error { _, err := s.GetRollout("nope"); return err }(),
			"ActiveRollout": func() error {
				_, _, err := s.ActiveRollout("payments")
				return err
			}(),
			"GetState": func() error { _, err := s.GetState("nope"); return err }(),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s of a missing key = %v, want ErrNotFound", name, err)
			}
		}
	})
}

func TestActiveIndexAcrossTransitions(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		s := b.openNew(t)
		steps := []struct {
			id, service string
			active      bool
			wantErr     error
			// the active rollout per service after the step ("" = none)
			wantActive map[string]string
		}{
			{"r1", "checkout", true, nil, map[string]string{"checkout": "r1", "payments": ""}},
			{"r1", "checkout", true, nil, map[string]string{"checkout": "r1"}},         // next stage
			{"r2", "checkout", true, ErrConflict, map[string]string{"checkout": "r1"}}, // one per service
			{"p1", "payments", true, nil, map[string]string{"checkout": "r1", "payments": "p1"}},
			{"r1", "payments", false, ErrInvalid, map[string]string{"checkout": "r1"}},          // a rollout keeps its service
			{"r2", "checkout", false, nil, map[string]string{"checkout": "r1"}},                 // an inactive one does not touch the index
			{"r1", "checkout", false, nil, map[string]string{"checkout": "", "payments": "p1"}}, // completed
			{"r2", "checkout", true, nil, map[string]string{"checkout": "r2"}},
			{"p1", "payments", false, nil, map[string]string{"checkout": "r2", "payments": ""}}, // rolled back
		}
		for i, st := range steps {
			doc := fmt.Sprintf(`{"step":%d}`, i)
			_, err := s.PutRollout(st.id, st.service, st.active, []byte(doc), nil)
			if !errors.Is(err, st.wantErr) || (err == nil) != (st.wantErr == nil) {
				t.Fatalf("step %d: PutRollout(%s, %s, %t) = %v, want %v", i, st.id, st.service, st.active, err, st.wantErr)
			}
			for service, want := range st.wantActive {
				id, _, err := s.ActiveRollout(service)
				if want == "" {
					if !errors.Is(err, ErrNotFound) {
						t.Errorf("step %d: ActiveRollout(%s) = %q, %v; want ErrNotFound", i, service, id, err)
					}
					continue
				}
				if err != nil || id != want {
					t.Errorf("step %d: ActiveRollout(%s) = %q, %v; want %q", i, service, id, err, want)
				}
			}
		}
	})
}

func TestListRollouts(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		s := b.openNew(t)
		put(t, s, "c1", "checkout", false, `1`)
		put(t, s, "p1", "payments", true, `2`)
		put(t, s, "c2", "checkout", true, `3`)
		put(t, s, "c1", "checkout", false, `4`) // an update keeps the creation order

		ids := func(recs []RolloutRecord) []string {
			var out []string
			for _, r := range recs {
				out = append(out, r.ID)
			}
			return out
		}
		for _, tc := range []struct {
			f    ListFilter
			want []string
		}{
			{ListFilter{}, []string{"c2", "p1", "c1"}},
			{ListFilter{Limit: 2}, []string{"c2", "p1"}},
			{ListFilter{Service: "checkout"}, []string{"c2", "c1"}},
			{ListFilter{ActiveOnly: true}, []string{"c2", "p1"}},
			{ListFilter{ActiveOnly: true, Limit: 1}, []string{"c2"}},
			{ListFilter{ActiveOnly: true, Service: "payments"}, []string{"p1"}},
			{ListFilter{Service: "search"}, nil},
		} {
			got, err := s.ListRollouts(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
				t.Errorf("ListRollouts(%+v) (-want +got):\n%s", tc.f, diff)
			}
		}
		all, _ := s.ListRollouts(ListFilter{Service: "checkout"})
		want := RolloutRecord{ID: "c1", Service: "checkout", Active: false, Order: 1, Doc: json.RawMessage(`4`)}
		if diff := cmp.Diff(want, all[1]); diff != "" {
			t.Errorf("record (-want +got):\n%s", diff)
		}
	})
}

func TestEventsPagingAndFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		s := b.openNew(t)
		// 30 events: rollouts a (checkout) and b (payments) alternate; kinds cycle.
		kinds := []string{"stage", "check", "command"}
		for i := range 30 {
			id, service := "a", "checkout"
			if i%2 == 1 {
				id, service = "b", "payments"
			}
			ev := Event{Time: t0.Add(time.Duration(i) * time.Second), Kind: kinds[i%3], Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
			if i < 10 {
				put(t, s, id, service, true, `{}`, ev)
				continue
			}
			ev.RolloutID, ev.Service = id, service
			if seq, err := s.AppendEvents(ev); err != nil || seq != uint64(i+1) {
				t.Fatalf("AppendEvents = %d, %v; want seq %d", seq, err, i+1)
			}
		}

		seqs := func(evs []Event) []uint64 {
			var out []uint64
			for _, e := range evs {
				out = append(out, e.Seq)
			}
			return out
		}
		tests := []struct {
			name     string
			q        EventQuery
			want     []uint64
			wantNext uint64
		}{
			{"first page", EventQuery{Limit: 4}, []uint64{1, 2, 3, 4}, 4},
			{"second page", EventQuery{After: 4, Limit: 4}, []uint64{5, 6, 7, 8}, 8},
			{"last page", EventQuery{After: 28, Limit: 4}, []uint64{29, 30}, 30},
			{"after the end", EventQuery{After: 30}, nil, 30},
			{"default limit", EventQuery{}, seqRange(1, 30), 30},
			{"rollout", EventQuery{RolloutID: "b", Limit: 3}, []uint64{2, 4, 6}, 6},
			{"service", EventQuery{Service: "checkout", After: 20}, []uint64{21, 23, 25, 27, 29}, 30},
			{"kind", EventQuery{Kind: "command", Limit: 2}, []uint64{3, 6}, 6},
			{"rollout and kind", EventQuery{RolloutID: "a", Kind: "stage"}, []uint64{1, 7, 13, 19, 25}, 30},
			{"no match", EventQuery{RolloutID: "zzz", After: 10}, nil, 30},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, next, err := s.Events(tc.q)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, seqs(got)); diff != "" {
					t.Errorf("seqs (-want +got):\n%s", diff)
				}
				if next != tc.wantNext {
					t.Errorf("next = %d, want %d", next, tc.wantNext)
				}
			})
		}

		// Following the cursor visits every matching event exactly once.
		var all []uint64
		for after := uint64(0); ; {
			page, next, err := s.Events(EventQuery{After: after, Limit: 2, Service: "payments"})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			all = append(all, seqs(page)...)
			after = next
		}
		var want []uint64
		for i := uint64(2); i <= 30; i += 2 {
			want = append(want, i)
		}
		if diff := cmp.Diff(want, all); diff != "" {
			t.Errorf("paged payments events (-want +got):\n%s", diff)
		}
	})
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// A PutRollout that fails inside its transaction (after the document and the
// index were written) leaves no trace, not even a used sequence number.
func TestFailedTransactionLeavesNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		s := b.openNew(t)
		put(t, s, "other", "payments", true, `{}`)

		failing := []struct {
			name   string
			events []Event
		}{
			{"event data not JSON", []Event{{Kind: "stage"}, {Kind: "stage", Data: json.RawMessage(`{bad`)}}},
			{"event without kind", []Event{{Kind: "stage"}, {}}},
			{"event of another rollout", []Event{{Kind: "stage"}, {Kind: "stage", RolloutID: "other"}}},
		}
		for _, tc := range failing {
			if _, err := s.PutRollout("r1", "checkout", true, []byte(`{"stage":1}`), tc.events); !errors.Is(err, ErrInvalid) {
				t.Fatalf("%s: PutRollout = %v, want ErrInvalid", tc.name, err)
			}
			if _, err := s.GetRollout("r1"); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: rollout written: %v", tc.name, err)
			}
			if _, _, err := s.ActiveRollout("checkout"); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: active index written: %v", tc.name, err)
			}
			if evs, _, _ := s.Events(EventQuery{}); len(evs) != 0 {
				t.Errorf("%s: events written: %+v", tc.name, evs)
			}
			if recs, _ := s.ListRollouts(ListFilter{}); len(recs) != 1 {
				t.Errorf("%s: order index written: %+v", tc.name, recs)
			}
		}
		// The sequences were rolled back too.
		put(t, s, "r1", "checkout", true, `{}`)
		if seq, err := s.AppendEvents(Event{Kind: "stage"}); err != nil || seq != 1 {
			t.Errorf("first committed event seq = %d, %v; want 1", seq, err)
		}
		recs, _ := s.ListRollouts(ListFilter{Limit: 1})
		if len(recs) != 1 || recs[0].Order != 2 {
			t.Errorf("newest rollout = %+v, want order 2", recs)
		}
	})
}

func TestPutRejectsInvalidArguments(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		s := b.openNew(t)
		for _, tc := range []struct {
			name, id, service, doc string
		}{
			{"empty id", "", "checkout", `{}`},
			{"empty service", "r1", "", `{}`},
			{"both empty", "", "", `{}`},
			{"control character", "r\x001", "checkout", `{}`},
			{"overlong service", "r1", strings.Repeat("s", maxNameLen+1), `{}`},
			{"doc not JSON", "r1", "checkout", `{"stage":`},
			{"empty doc", "r1", "checkout", ``},
		} {
			if _, err := s.PutRollout(tc.id, tc.service, true, []byte(tc.doc), nil); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: PutRollout = %v, want ErrInvalid", tc.name, err)
			}
		}
		if err := s.PutState("", []byte(`{}`)); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutState with empty key = %v, want ErrInvalid", err)
		}
		if err := s.PutState("k", []byte(`nope`)); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutState with bad doc = %v, want ErrInvalid", err)
		}
		if recs, _ := s.ListRollouts(ListFilter{}); len(recs) != 0 {
			t.Errorf("rejected puts wrote %+v", recs)
		}
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		dir := b.where(t)
		s := b.open(t, dir)
		put(t, s, "r1", "checkout", false, `{"done":true}`, Event{Kind: "completed"})
		put(t, s, "r2", "checkout", true, `{"stage":1}`, Event{Kind: "started"}, Event{Kind: "stage"})
		if err := s.PutState("weights/checkout", []byte(`{"v2":500}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s = b.open(t, dir)
		if id, doc, err := s.ActiveRollout("checkout"); err != nil || id != "r2" || string(doc) != `{"stage":1}` {
			t.Errorf("ActiveRollout after reopen = %q, %s, %v", id, doc, err)
		}
		if doc, err := s.GetRollout("r1"); err != nil || string(doc) != `{"done":true}` {
			t.Errorf("GetRollout after reopen = %s, %v", doc, err)
		}
		if doc, err := s.GetState("weights/checkout"); err != nil || string(doc) != `{"v2":500}` {
			t.Errorf("GetState after reopen = %s, %v", doc, err)
		}
		if seq, err := s.AppendEvents(Event{Kind: "check"}); err != nil || seq != 4 {
			t.Errorf("sequence after reopen = %d, %v; want 4", seq, err)
		}
		put(t, s, "r3", "payments", true, `{}`)
		if recs, _ := s.ListRollouts(ListFilter{Limit: 1}); len(recs) != 1 || recs[0].ID != "r3" || recs[0].Order != 3 {
			t.Errorf("newest after reopen = %+v", recs)
		}
	})
}

func TestSecondOpenFailsFast(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir)
	start := time.Now()
	_, err := Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if path := filepath.Join(dir, FileName); !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	// Generous bound: it must give up, not wait forever.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("second Open took %v", d)
	}
}

func TestNewID(t *testing.T) {
	id := NewID(time.Date(2026, 3, 1, 14, 5, 9, 0, time.FixedZone("CET", 3600)), "checkout")
	if !regexp.MustCompile(`^checkout-20260301-130509-[0-9a-f]{8}$`).MatchString(id) {
		t.Errorf("NewID = %q", id)
	}
	if a, b := NewID(t0, "checkout"), NewID(t0, "checkout"); a == b {
		t.Errorf("two ids in the same second are equal: %q", a)
	}
	if a, b := NewID(t0, "x"), NewID(t0.Add(time.Second), "x"); a >= b {
		t.Errorf("ids do not sort by time: %q >= %q", a, b)
	}
}

func BenchmarkPutRollout(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	doc := []byte(`{"service":"checkout","stage":2,"weights":{"stable":7500,"canary":2500},"window":"30m"}`)
	ev := Event{Time: t0, Kind: "stage", Data: json.RawMessage(`{"from":1,"to":2}`)}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.PutRollout(fmt.Sprintf("r%d", i%50), fmt.Sprintf("svc%d", i%50), true, doc, []Event{ev}); err != nil {
			b.Fatal(err)
		}
	}
}
