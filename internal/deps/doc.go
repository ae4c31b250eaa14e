// Package deps holds the test that asserts octoroll's import rules, the ones the package
// doc comments state, with go list -deps: the engine (controller), the vocabulary
// (model) and translation (translate) import nothing that does I/O; catalog does not
// import the engine, translation, serving or the runner; xds serves and does not import
// the engine, the runner or the store; the admin API's wire types (admin/api) and the
// CLI import neither the admin server nor anything that serves, stores or watches. It has
// no code of its own.
package deps
