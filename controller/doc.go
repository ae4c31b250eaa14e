// Package controller owns the rollout engine: the release guide as a pure, persisted
// state machine. A Rollout takes one service from its known-good (stable) version to a
// canary version through a plan of stages, decides Go, Hold, Pause or Rollback from the
// Observations it is given, and carries on after 100 % through the post-release
// monitoring window.
//
// The engine is pure: state, time and observations in; new state, desired weights and
// events out. It performs no I/O, never reads the wall clock and starts no goroutines.
// Import rule (asserted by internal/deps): it imports octoroll's vocabulary (model) and
// the standard library's pure packages only: not catalog, translate, xds, store or
// runner, and nothing that does I/O (zap, fsnotify, yaml, net, net/http, os/exec, gRPC,
// bbolt, database/sql). A Rollout is plain data
// that survives a JSON round trip exactly, so a loop around the engine can persist it
// after every transition and resume it after a crash without moving traffic by itself.
//
// A loop drives it:
//
//	r, evs, err := controller.New(now, id, spec, svc) // pre-flight
//	for each check interval {
//	    obs := gather(r.Generation)                 // metrics, health, checks, xds ACK state
//	    r, evs = r.Step(now, obs)
//	    persist(r, evs)                              // before publishing
//	    publish(r.Weights(), r.Matches())
//	}
//
// Operator commands go through Rollout.Apply.
//
// The engine also owns what a service keeps between rollouts: ServiceState.After says
// which version is known-good once a rollout ends, and a Restore follows a rollback's
// known-good weights until every proxy ACKed them (the time to restore), stepped by the
// loop with what the xds layer reports (RestoreObservation).
package controller
