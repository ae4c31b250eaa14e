package model_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/octoacme/octoroll/model"
)

func TestUnjoin(t *testing.T) {
	a, b, c := errors.New("a"), errors.New("b"), errors.New("c")
	if got := model.Unjoin(nil); got != nil {
		t.Errorf("nil: %v", got)
	}
	if got := model.Unjoin(a); !slices.Equal(got, []error{a}) {
		t.Errorf("one: %v", got)
	}
	if got := model.Unjoin(errors.Join(a, errors.Join(b, c))); !slices.Equal(got, []error{a, b, c}) {
		t.Errorf("nested join: %v, want [a b c]", got)
	}
}
