// Package logging builds the zap logger every octoroll program uses, from the two
// settings they all share: a format (json for machines, console for people) and a level.
package logging

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Validate reports what is wrong with format and level, naming the flags
// (log-format, log-level).
func Validate(format, level string) error {
	var errs []error
	if format != "json" && format != "console" {
		errs = append(errs, fmt.Errorf("log-format: %q: want json or console", format))
	}
	if _, err := zapcore.ParseLevel(level); err != nil {
		errs = append(errs, fmt.Errorf("log-level: %w", err))
	}
	return errors.Join(errs...)
}

// New builds the logger: JSON for production, coloured console output for people.
func New(format, level string) (*zap.Logger, error) {
	if err := Validate(format, level); err != nil {
		return nil, err
	}
	lvl, _ := zapcore.ParseLevel(level)
	zc := zap.NewProductionConfig()
	if format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		zc.DisableStacktrace = true
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	return zc.Build()
}
