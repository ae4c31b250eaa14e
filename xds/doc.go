// Package xds serves octoroll's Envoy data plane: it publishes translated resources
// (from package translate) in its own cache, serves them over ADS, the per-type SotW
// services and delta xDS, and tracks what each proxy subscribed to, ACKed and NACKed.
//
// It only serves: translation (the IR, the resources, their checks and names) is
// package translate; DNS resolution and per-service publication are package publish.
//
// Import rule (asserted by internal/deps): xds does not import controller, runner or
// store.
package xds
