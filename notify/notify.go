// Package notify delivers rollout lifecycle events to the webhook sinks of the catalog:
// a generic JSON payload or a Slack-compatible message, filtered per sink by event name.
//
// Delivery is asynchronous: Notify only encodes and enqueues, so a slow or dead
// receiver never blocks or slows a rollout or a rollback. Each sink has a bounded queue
// and one worker that delivers in order, retrying with exponential backoff and jitter;
// when a queue is full the oldest waiting message is dropped (the newest, such as a
// rollback, is the one on-call needs). Drops and delivery failures are counted, logged
// and reported to the OnFailure hook.
//
// It must not import store, xds or runner.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/model"
)

// Defaults of Options.
const (
	DefaultQueueSize   = 100
	DefaultMaxAttempts = 5
	DefaultTimeout     = 10 * time.Second
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = time.Minute
)

// historyLimit bounds the events kept per rollout for an incident's time to detect,
// and historyRollouts the rollouts tracked.
const (
	historyLimit    = 512
	historyRollouts = 64
)

// Options tune delivery. Zero values take the defaults.
type Options struct {
	// QueueSize is the number of messages waiting per sink; beyond it the oldest is
	// dropped.
	QueueSize int
	// MaxAttempts is the number of delivery attempts per message (1 = no retry).
	MaxAttempts int
	// Timeout bounds one HTTP request.
	Timeout time.Duration
	// BackoffBase is the wait before the first retry; it doubles per retry up to
	// BackoffMax, with jitter (half fixed, half random).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Client sends the requests; nil uses a client without a global timeout (Timeout
	// applies per request).
	Client *http.Client
	// UserAgent is sent with every request; default "octoroll".
	UserAgent string
	// OnFailure is called once per message that will not be delivered: dropped from a
	// full queue, or failed after its last attempt. It runs on Notify's or a worker's
	// goroutine and must not block (record an event, increment a counter).
	OnFailure func(sink string, err error)
	// Health, when set, gives the last probe errors of unhealthy endpoints for the
	// investigation block of a pause caused by them (see AddEndpointErrors).
	Health HealthSource
	// OnEvent is called with the final outcome of every message (delivered, failed or
	// dropped), under the same rules as OnFailure.
	OnEvent func(Delivery)
}

// HealthSource reports the health of a version's endpoints. *healthcheck.Prober
// satisfies it.
type HealthSource interface {
	Status(service, version string) healthcheck.VersionHealth
}

var _ HealthSource = (*healthcheck.Prober)(nil)

// Outcome is what became of one message.
type Outcome string

// Outcomes.
const (
	Delivered Outcome = "delivered"
	Failed    Outcome = "failed"  // every attempt failed, or the receiver refused it (4xx)
	Dropped   Outcome = "dropped" // the sink's queue was full, or the sink was removed
)

// Delivery is the final outcome of one message.
type Delivery struct {
	Sink      string
	Event     string
	RolloutID string
	Outcome   Outcome
	// Attempts is the number of HTTP requests made (0 for a drop).
	Attempts int
	// Err is the last error (nil when delivered).
	Err error
}

// SinkStats are one sink's counters since the notifier was created.
type SinkStats struct {
	// Queued is the number of messages waiting now (not counting one in flight).
	Queued    int    `json:"queued"`
	Delivered uint64 `json:"delivered"`
	// Failed counts messages given up after their attempts; Dropped messages dropped
	// from a full queue. Both are failures (OnFailure).
	Failed  uint64 `json:"failed"`
	Dropped uint64 `json:"dropped"`
	// Retries counts attempts after the first.
	Retries     uint64    `json:"retries"`
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
}

// ErrQueueFull is the error of a message dropped because its sink's queue was full.
var ErrQueueFull = errors.New("notification queue full: oldest message dropped")

// errSinkRemoved is the error of messages left when a sink is removed by Update.
var errSinkRemoved = errors.New("sink removed from the catalog")

// Notifier delivers lifecycle events to webhook sinks. It is safe for concurrent use.
type Notifier struct {
	log  *zap.Logger
	opts Options

	mu      sync.Mutex
	sinks   map[string]*sink
	history map[string][]controller.Event
	order   []string // rollout ids in history, oldest first
	ctx     context.Context
	wg      sync.WaitGroup
}

type sink struct {
	name   string
	stop   chan struct{} // closed when the sink is removed
	wake   chan struct{} // capacity 1: work may be waiting
	mu     sync.Mutex
	cfg    catalog.Sink
	filter map[string]bool // nil: every event
	queue  []message
	stats  SinkStats
}

type message struct {
	id        string // EventID
	event     string
	rolloutID string
	body      []byte
	format    string
}

// New returns a notifier for sinks. Deliveries start when Run is called; Notify may be
// called before (messages wait in the queues).
func New(log *zap.Logger, sinks []catalog.Sink, opts Options) *Notifier {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = DefaultBackoffBase
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.BackoffMax < opts.BackoffBase {
		opts.BackoffMax = opts.BackoffBase
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "octoroll"
	}
	n := &Notifier{log: log.Named("notify"), opts: opts, sinks: map[string]*sink{}, history: map[string][]controller.Event{}}
	n.Update(sinks)
	return n
}

// Run delivers until ctx is done, then waits for the workers to stop (an in-flight
// request is cancelled). Call it once.
func (n *Notifier) Run(ctx context.Context) error {
	n.mu.Lock()
	n.ctx = ctx
	for _, s := range n.sinks {
		n.startLocked(s)
	}
	n.mu.Unlock()
	<-ctx.Done()
	n.wg.Wait()
	return nil
}

func (n *Notifier) startLocked(s *sink) {
	if n.ctx == nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.work(n.ctx, s)
	}()
}

// Update replaces the sinks after a catalog reload. Sinks are matched by name: a kept
// sink keeps its queue and takes the new URL, format and filter for the messages
// enqueued from now on; a removed sink's waiting messages are dropped.
func (n *Notifier) Update(sinks []catalog.Sink) {
	var drops []Delivery
	n.mu.Lock()
	seen := map[string]bool{}
	for _, c := range sinks {
		seen[c.Name] = true
		if s, ok := n.sinks[c.Name]; ok {
			s.mu.Lock()
			s.setConfig(c)
			s.mu.Unlock()
			continue
		}
		s := &sink{name: c.Name, stop: make(chan struct{}), wake: make(chan struct{}, 1)}
		s.setConfig(c)
		n.sinks[c.Name] = s
		n.startLocked(s)
	}
	for name, s := range n.sinks {
		if seen[name] {
			continue
		}
		delete(n.sinks, name)
		close(s.stop)
		s.mu.Lock()
		for _, m := range s.queue {
			s.stats.Dropped++
			drops = append(drops, Delivery{Sink: name, Event: m.event, RolloutID: m.rolloutID, Outcome: Dropped, Err: errSinkRemoved})
		}
		s.queue = nil
		s.mu.Unlock()
	}
	n.mu.Unlock()
	for _, d := range drops {
		n.report(d)
	}
}

func (s *sink) setConfig(c catalog.Sink) {
	if c.Format == "" {
		c.Format = catalog.DefaultSinkFormat
	}
	s.cfg = c
	s.filter = nil
	if len(c.Events) > 0 {
		s.filter = map[string]bool{}
		for _, e := range c.Events {
			s.filter[e] = true
		}
	}
}

// Notify enqueues ev of rollout r (r as after ev) for every sink whose filter takes it.
// It never blocks on delivery. Pass every event of a rollout, not only the lifecycle
// ones: the others are kept (bounded) to compute a rollback's time to detect, and are
// not sent.
func (n *Notifier) Notify(ev controller.Event, r controller.Rollout) {
	var drops []Delivery
	n.mu.Lock()
	id := ev.RolloutID
	if id == "" {
		id = r.ID
	}
	hist := n.history[id]
	if !catalog.IsEventName(ev.Kind) {
		n.remember(id, ev)
		n.mu.Unlock()
		return
	}
	p := Build(ev, r, hist)
	AddEndpointErrors(&p, r, n.opts.Health)
	if ev.State.Terminal() && (ev.Kind == controller.EventRolledBack || ev.Kind == controller.EventCompleted) {
		n.forget(id)
	} else {
		n.remember(id, ev)
	}
	bodies := map[string][]byte{}
	eventID := EventID(ev)
	for _, s := range n.sinks {
		s.mu.Lock()
		if s.filter != nil && !s.filter[ev.Kind] {
			s.mu.Unlock()
			continue
		}
		format := s.cfg.Format
		body, ok := bodies[format]
		if !ok {
			var err error
			body, err = Encode(format, p)
			if err != nil {
				// Catalog validation admits only known formats; count it rather than panic.
				s.stats.Failed++
				s.stats.LastError, s.stats.LastErrorAt = err.Error(), ev.Time
				s.mu.Unlock()
				drops = append(drops, Delivery{Sink: s.name, Event: ev.Kind, RolloutID: id, Outcome: Failed, Err: err})
				continue
			}
			bodies[format] = body
		}
		if len(s.queue) >= n.opts.QueueSize {
			old := s.queue[0]
			s.queue = slices.Delete(s.queue, 0, 1)
			s.stats.Dropped++
			s.stats.LastError, s.stats.LastErrorAt = ErrQueueFull.Error(), ev.Time
			drops = append(drops, Delivery{Sink: s.name, Event: old.event, RolloutID: old.rolloutID, Outcome: Dropped, Err: ErrQueueFull})
		}
		s.queue = append(s.queue, message{id: eventID, event: ev.Kind, rolloutID: id, body: body, format: format})
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	n.mu.Unlock()
	for _, d := range drops {
		n.report(d)
	}
}

func (n *Notifier) remember(id string, ev controller.Event) {
	if id == "" {
		return // an idle service's event (publish_failed, say) belongs to no rollout
	}
	h, ok := n.history[id]
	if !ok {
		n.order = append(n.order, id)
		if len(n.order) > historyRollouts {
			delete(n.history, n.order[0])
			n.order = n.order[1:]
		}
	}
	if len(h) >= historyLimit {
		h = slices.Delete(h, 0, len(h)-historyLimit+1)
	}
	n.history[id] = append(h, ev)
}

func (n *Notifier) forget(id string) {
	delete(n.history, id)
	if i := slices.Index(n.order, id); i >= 0 {
		n.order = slices.Delete(n.order, i, i+1)
	}
}

// Stats returns each sink's counters, by sink name.
func (n *Notifier) Stats() map[string]SinkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]SinkStats, len(n.sinks))
	for name, s := range n.sinks {
		s.mu.Lock()
		st := s.stats
		st.Queued = len(s.queue)
		s.mu.Unlock()
		out[name] = st
	}
	return out
}

// report logs a final outcome and calls the hooks.
func (n *Notifier) report(d Delivery) {
	if d.Outcome != Delivered {
		n.log.Warn("notification not delivered", zap.String("sink", d.Sink), zap.String("event", d.Event),
			zap.String("rollout", d.RolloutID), zap.String("outcome", string(d.Outcome)),
			zap.Int("attempts", d.Attempts), zap.Error(d.Err))
		if n.opts.OnFailure != nil {
			n.opts.OnFailure(d.Sink, fmt.Errorf("%s notification of rollout %s %s: %w", d.Event, d.RolloutID, d.Outcome, d.Err))
		}
	} else {
		n.log.Debug("notification delivered", zap.String("sink", d.Sink), zap.String("event", d.Event),
			zap.String("rollout", d.RolloutID), zap.Int("attempts", d.Attempts))
	}
	if n.opts.OnEvent != nil {
		n.opts.OnEvent(d)
	}
}

// work delivers s's queue in order until ctx is done or s is removed.
func (n *Notifier) work(ctx context.Context, s *sink) {
	for {
		s.mu.Lock()
		var m message
		ok := len(s.queue) > 0
		if ok {
			m = s.queue[0]
			s.queue = slices.Delete(s.queue, 0, 1)
		}
		s.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			case <-s.wake:
				continue
			}
		}
		n.report(n.deliver(ctx, s, m))
	}
}

// deliver makes up to MaxAttempts requests for m.
func (n *Notifier) deliver(ctx context.Context, s *sink, m message) Delivery {
	d := Delivery{Sink: s.name, Event: m.event, RolloutID: m.rolloutID}
	for {
		d.Attempts++
		s.mu.Lock()
		url := s.cfg.URL
		if d.Attempts > 1 {
			s.stats.Retries++
		}
		s.mu.Unlock()
		retry, err := n.post(ctx, url, m)
		s.mu.Lock()
		switch {
		case err == nil:
			s.stats.Delivered++
			d.Outcome = Delivered
		case !retry || d.Attempts >= n.opts.MaxAttempts || ctx.Err() != nil:
			s.stats.Failed++
			s.stats.LastError, s.stats.LastErrorAt = err.Error(), time.Now()
			d.Outcome, d.Err = Failed, err
		default:
			s.stats.LastError, s.stats.LastErrorAt = err.Error(), time.Now()
		}
		s.mu.Unlock()
		if d.Outcome != "" {
			return d
		}
		n.log.Debug("notification attempt failed; retrying", zap.String("sink", s.name), zap.String("event", m.event),
			zap.Int("attempt", d.Attempts), zap.Error(err))
		t := time.NewTimer(n.backoff(d.Attempts))
		select {
		case <-ctx.Done():
		case <-s.stop:
		case <-t.C:
		}
		t.Stop()
		if ctx.Err() != nil {
			s.mu.Lock()
			s.stats.Failed++
			s.mu.Unlock()
			d.Outcome, d.Err = Failed, fmt.Errorf("%w (after: %w)", ctx.Err(), err)
			return d
		}
	}
}

// backoff is the wait after failed attempt number attempt: BackoffBase doubled per
// retry, capped at BackoffMax, half of it random so that sinks failing together do not
// retry in step.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.opts.BackoffBase
	for i := 1; i < attempt && d < n.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, n.opts.BackoffMax)
	half := d / 2
	return half + rand.N(half+1)
}

// post sends one request; retry says whether a failure may succeed later (network
// errors, timeouts, 408, 429 and 5xx). Its error never holds the sink's secrets: the
// URL (and any echo of its secret parts in the receiver's answer) is redacted.
func (n *Notifier) post(ctx context.Context, url string, m message) (retry bool, err error) {
	retry, err = n.postOnce(ctx, url, m)
	if err != nil {
		err = &redactedError{msg: model.RedactText(err.Error(), url), err: err}
	}
	return retry, err
}

// redactedError is an error whose text was redacted; errors.Is still sees the cause
// (a context's end).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Is(target error) bool {
	return errors.Is(e.err, target)
}

func (n *Notifier) postOnce(ctx context.Context, url string, m message) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(m.body))
	if err != nil {
		return false, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", n.opts.UserAgent)
	req.Header.Set("X-Octoroll-Event", m.event)
	req.Header.Set(EventIDHeader, m.id)
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return true, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	err = fmt.Errorf("receiver answered %s: %s", resp.Status, bytes.TrimSpace(snippet))
	return resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500, err
}
