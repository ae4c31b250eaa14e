// Package model is octoroll's vocabulary: the plain data and rules that the catalog, the
// rollout engine (controller) and translation (translate) all speak. Traffic weights
// (TotalWeight), endpoints (Endpoint, ParseEndpoint), durations (Duration), a service
// and its versions as declared (Service, Version, HealthCheck, Outlier, MetricQueries,
// MetricCheck), the rules on names and values (ValidateName, ValidateZone,
// ValidateDomain, ValidateHeaderName, ValidateCookieName, ValidateMatchValue,
// ValidateFinite, Version.Validate, DuplicateEndpoint, the "|" separator NameSeparator,
// the reserved PinHeader) and the rollout event kinds.
//
// A rule written here is the one rule: catalog validation, the engine's spec validation
// and translation's IR validation call the same function, so that what one accepts the
// others accept too.
//
// Import rule (asserted by internal/deps): model imports only the standard library's
// pure packages (no net except net/netip, no os, no net/http) and no other octoroll or
// third-party package. In particular it does not import gopkg.in/yaml.v3: YAML decoding
// of these types lives in catalog (its strict node decoder); yaml.v3's own encoder and
// decoder use the encoding.TextMarshaler and TextUnmarshaler methods.
package model
