// Package schema ships the JSON Schemas of octoroll's files, for editors and CI:
// catalog.schema.json (the catalog, catalog.Catalog) and rollout-spec.schema.json (a
// rollout spec, controller.Spec). They are generated from the Go types by the test in
// this directory (go test ./schema -update rewrites them), which also checks every
// example and deployment file against them.
package schema
