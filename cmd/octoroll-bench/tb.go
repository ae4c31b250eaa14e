package main

import (
	"fmt"
	"os"
	"testing"
)

// benchTB lets the bench use helpers written for tests (promtest). Fatal and Skip
// panic with a benchAbort, which run turns into an error; cleanups run at close.
type benchTB struct {
	testing.TB
	cleanups []func()
	failed   bool
}

type benchAbort struct{ msg string }

func (b *benchTB) Helper()                 {}
func (b *benchTB) Cleanup(f func())        { b.cleanups = append(b.cleanups, f) }
func (b *benchTB) Failed() bool            { return b.failed }
func (b *benchTB) Logf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (b *benchTB) Log(a ...any)            { fmt.Fprintln(os.Stderr, a...) }
func (b *benchTB) Fatalf(f string, a ...any) {
	b.failed = true
	panic(benchAbort{fmt.Sprintf(f, a...)})
}
func (b *benchTB) Fatal(a ...any)            { b.failed = true; panic(benchAbort{fmt.Sprint(a...)}) }
func (b *benchTB) Skip(a ...any)             { panic(benchAbort{fmt.Sprint(a...)}) }
func (b *benchTB) Errorf(f string, a ...any) { b.failed = true; b.Logf(f, a...) }

func (b *benchTB) TempDir() string {
	d, err := os.MkdirTemp("", "octoroll-bench-")
	if err != nil {
		b.Fatalf("temp dir: %v", err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

func (b *benchTB) close() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}

// run calls f, turning a benchAbort panic into an error.
func (b *benchTB) run(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(benchAbort)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%s", a.msg)
		}
	}()
	f()
	return nil
}
