// Package lint validates octoroll's files offline, as `octoroll lint` does: a catalog
// with the catalog's own parser, a rollout spec with the same strict YAML decoder
// (catalog.Decode) and the engine's spec validation (controller.Spec.Validate). Every
// problem names FILE:LINE:COL and the field.
package lint

import (
	"cmp"
	"errors"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// Kind of a file.
const (
	KindCatalog = "catalog"
	KindSpec    = "rollout spec"
)

// Detect tells a catalog (a mapping with services at the top) from a rollout spec.
func Detect(data []byte) string {
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) == nil {
		if _, ok := top["services"]; ok {
			return KindCatalog
		}
	}
	return KindSpec
}

// File validates one catalog or rollout spec; name is the file name errors carry. It
// returns every problem (errors.Join of *catalog.FieldError), or nil.
func File(name string, data []byte) error {
	if Detect(data) == KindCatalog {
		_, err := catalog.Parse(name, data)
		return err
	}
	_, err := Spec(name, data)
	return err
}

// Spec decodes and validates a rollout spec on its own (without the catalog: whether
// its service and versions exist is the server's pre-flight).
func Spec(name string, data []byte) (controller.Spec, error) {
	spec, doc, err := DecodeSpec(name, data)
	if doc == nil || (err != nil && spec.Service == "" && spec.Canary.Version == "") {
		// Not YAML, or nothing of a spec decoded: validation would only add noise.
		return spec, err
	}
	var errs []error
	if err != nil {
		errs = model.Unjoin(err)
	}
	for _, e := range model.Unjoin(spec.Validate()) {
		// Spec.Validate names the field first: "stages[1].minWindow: required".
		path, msg, ok := strings.Cut(e.Error(), ": ")
		if !ok || strings.ContainsAny(path, " \"") {
			path, msg = "", e.Error()
		}
		if fe := doc.At(path, msg); fe != nil {
			errs = append(errs, fe)
		}
	}
	slices.SortStableFunc(errs, func(a, b error) int {
		var fa, fb *catalog.FieldError
		if !errors.As(a, &fa) || !errors.As(b, &fb) {
			return 0
		}
		return cmp.Or(cmp.Compare(fa.Line, fb.Line), cmp.Compare(fa.Column, fb.Column))
	})
	return spec, errors.Join(errs...)
}

// DecodeSpec decodes a rollout spec, YAML or JSON, with the catalog's strict positioned
// decoder (catalog.Decode): a misspelt field, a wrong type or a duration without a unit
// is a *catalog.FieldError naming name:line:column and the field. It is the decoder of
// `octoroll lint` and of the admin API's POST /api/v1/rollouts.
func DecodeSpec(name string, data []byte) (controller.Spec, *catalog.Document, error) {
	var spec controller.Spec
	doc, err := catalog.Decode(name, data, &spec)
	return spec, doc, err
}
