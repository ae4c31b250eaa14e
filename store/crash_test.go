package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/octoacme/octoroll/internal/etcdtest"
)

// crashChildEnv, when set to a state directory, turns the test binary into
// the crash test's writer: see crashWriter.
const crashChildEnv = "OCTOROLL_STORE_CRASH_DIR"

// crashEtcdEnv, when set to an etcd endpoint, makes the writer use the etcd store
// there, with the crashChildEnv value as its key prefix.
const crashEtcdEnv = "OCTOROLL_STORE_CRASH_ETCD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		if err := crashWriter(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashDoc is the writer's rollout document.
type crashDoc struct {
	N     int `json:"n"`     // transition number, from 1, across all rollouts
	Stage int `json:"stage"` // 0..9; stage 9 completes the rollout
}

const crashStages = 10

func crashRollout(n int) (id string, stage int) {
	return fmt.Sprintf("r%05d", (n-1)/crashStages), (n - 1) % crashStages
}

// crashWriter continues the transition sequence found in dir: transition n
// belongs to rollout (n-1)/10 at stage (n-1)%10, stage 9 completes it, and
// each transition carries one event with {"n": n}. After each PutRollout
// returns it prints n on stdout. It stops by itself after 5000 transitions in
// case nobody kills it.
func crashWriter(dir string) error {
	var (
		s   contract
		err error
	)
	if ep := os.Getenv(crashEtcdEnv); ep != "" {
		s, err = OpenEtcd(EtcdOptions{Endpoints: []string{ep}, Prefix: dir})
	} else {
		s, err = Open(dir, Options{LockTimeout: 10 * time.Second})
	}
	if err != nil {
		return err
	}
	last, err := lastTransition(s)
	if err != nil {
		return err
	}
	for n := last + 1; n <= last+5000; n++ {
		id, stage := crashRollout(n)
		doc, _ := json.Marshal(crashDoc{N: n, Stage: stage})
		ev := Event{Time: t0.Add(time.Duration(n) * time.Second), Kind: "transition", Data: json.RawMessage(`{"n":` + strconv.Itoa(n) + `}`)}
		if _, err := s.PutRollout(id, "checkout", stage != crashStages-1, doc, []Event{ev}); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(os.Stdout, n); err != nil {
			return err
		}
	}
	return s.Close()
}

// lastTransition is the n of the newest rollout's document, 0 when empty.
func lastTransition(s contract) (int, error) {
	recs, err := s.ListRollouts(ListFilter{Limit: 1})
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	var d crashDoc
	if err := json.Unmarshal(recs[0].Doc, &d); err != nil {
		return 0, err
	}
	return d.N, nil
}

// TestCrashKeepsEveryAcknowledgedWrite kills a writer process with SIGKILL
// at random points, several times, and checks after each kill that the file
// opens, that every transition the writer acknowledged is there with its
// event, and that the active index agrees with the newest rollout. With etcd the
// writer is the client killed; the server stays up.
func TestCrashKeepsEveryAcknowledgedWrite(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		dir := b.where(t)
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
		const rounds = 20
		acked := 0
		for round := range rounds {
			killAfter := 1 + rng.IntN(30) // acknowledged transitions before the kill
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
			if b.name == "etcd" {
				cmd.Env = append(cmd.Env, crashEtcdEnv+"="+etcdtest.Shared(t).Endpoint)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer // read only after Wait
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewScanner(stdout)
			seen, killed := 0, false
			for lines.Scan() {
				n, err := strconv.Atoi(lines.Text())
				if err != nil {
					t.Fatalf("round %d: writer printed %q", round, lines.Text())
				}
				if n != acked+1 {
					t.Fatalf("round %d: writer acknowledged %d after %d", round, n, acked)
				}
				acked = n
				if seen++; seen == killAfter && !killed {
					// The writer keeps going until the signal lands, so the kill
					// hits a random point of a later transaction.
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
					killed = true
				}
			}
			err = cmd.Wait()
			if !killed {
				t.Fatalf("round %d: writer exited before the kill: %v\n%s", round, err, stderr.String())
			}

			s := b.open(t, dir)
			last := checkCrashState(t, s, round, acked)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("round %d: %d transitions acknowledged in this round, %d in total, %d committed",
				round, seen, acked, last)
			// A transition committed but not yet acknowledged when the kill
			// landed is durable; the next writer continues after it.
			acked = last
		}
	})
}

// checkCrashState returns the newest committed transition.
func checkCrashState(t *testing.T, s contract, round, acked int) int {
	t.Helper()
	last, err := lastTransition(s)
	if err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	// At most one transition may have committed without being acknowledged.
	if last < acked || last > acked+1 {
		t.Fatalf("round %d: newest transition %d, acknowledged %d", round, last, acked)
	}

	// Every transition's document of the newest rollout and its event are present, in order.
	var events []Event
	for after := uint64(0); ; {
		page, next, err := s.Events(EventQuery{After: after, Limit: MaxEventLimit})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(page) == 0 {
			break
		}
		events, after = append(events, page...), next
	}
	if len(events) != last {
		t.Fatalf("round %d: %d events for %d transitions", round, len(events), last)
	}
	for i, ev := range events {
		n := i + 1
		id, _ := crashRollout(n)
		if ev.Seq != uint64(n) || ev.RolloutID != id || string(ev.Data) != `{"n":`+strconv.Itoa(n)+`}` {
			t.Fatalf("round %d: event %d = %+v", round, n, ev)
		}
	}

	id, stage := crashRollout(last)
	doc, err := s.GetRollout(id)
	if err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	var d crashDoc
	if err := json.Unmarshal(doc, &d); err != nil || d.N != last || d.Stage != stage {
		t.Fatalf("round %d: rollout %s = %s, want transition %d", round, id, doc, last)
	}
	activeID, _, err := s.ActiveRollout("checkout")
	switch {
	case stage == crashStages-1 && !errors.Is(err, ErrNotFound):
		t.Fatalf("round %d: completed rollout %s, but active rollout = %q, %v", round, id, activeID, err)
	case stage != crashStages-1 && (err != nil || activeID != id):
		t.Fatalf("round %d: active rollout = %q, %v; want %s", round, activeID, err, id)
	}
	return last
}
