// Package admin owns octoroll's admin HTTP server: the JSON API under /api/v1 that the
// CLI and operators drive rollouts with, the Prometheus /metrics endpoint, /healthz and
// /readyz, and the server-rendered status page at /. The bodies it reads and writes are
// package api's (admin/api), which the CLI shares.
//
// It sits on top of the rollout runner (through the Backend interface) and the xds and
// catalog packages; nothing in octoroll imports it but cmd/octoroll.
package admin
