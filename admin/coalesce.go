package admin

import (
	"errors"
	"sync"
)

var errPanicked = errors.New("the shared computation panicked")

// coalescer runs one computation for many concurrent callers: a caller that arrives
// while a computation runs waits for it to end and shares the next one, which starts
// after its arrival, so every caller gets a result computed after it asked (what it
// did before, an action say, is in it) and at most two computations' time later. With
// N concurrent readers the work is one computation at a time instead of N.
type coalescer[T any] struct {
	mu      sync.Mutex
	running *flight[T] // the computation in progress
	next    *flight[T] // the one that starts when running ends
}

type flight[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// do returns the result of a run of f that started after do was called.
func (c *coalescer[T]) do(f func() (T, error)) (T, error) {
	c.mu.Lock()
	if c.running == nil {
		fl := &flight[T]{done: make(chan struct{})}
		c.running = fl
		c.mu.Unlock()
		return c.run(fl, f)
	}
	if fl := c.next; fl != nil {
		c.mu.Unlock()
		<-fl.done
		return fl.val, fl.err
	}
	fl, prev := &flight[T]{done: make(chan struct{})}, c.running
	c.next = fl
	c.mu.Unlock()
	<-prev.done
	c.mu.Lock()
	c.next = nil
	c.running = fl
	c.mu.Unlock()
	return c.run(fl, f)
}

func (c *coalescer[T]) run(fl *flight[T], f func() (T, error)) (T, error) {
	fl.err = errPanicked // replaced when f returns; the waiters of a panic get it
	defer func() {
		c.mu.Lock()
		if c.running == fl {
			c.running = nil
		}
		c.mu.Unlock()
		close(fl.done)
	}()
	fl.val, fl.err = f()
	return fl.val, fl.err
}
