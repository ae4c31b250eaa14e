// Package logging builds the zap logger every octoroll program uses, from the two
// settings they all share: a format (json for machines, console for people) and a level.
package logging

import (
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/octoacme/octoroll/model"
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
	return zc.Build(zap.WrapCore(Redacting))
}

// redactingCore redacts the message and the string, error and stringer fields of every
// entry with model.RedactText before encoding: an error that quotes a webhook URL is
// logged with its secret parts replaced.
type redactingCore struct{ zapcore.Core }

// Redacting wraps core so that what it writes is redacted.
func Redacting(core zapcore.Core) zapcore.Core { return redactingCore{core} }

func (c redactingCore) With(fields []zapcore.Field) zapcore.Core {
	return redactingCore{c.Core.With(redactFields(fields))}
}

func (c redactingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c redactingCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	e.Message = model.RedactText(e.Message)
	return c.Core.Write(e, redactFields(fields))
}

func redactFields(fields []zapcore.Field) []zapcore.Field {
	var out []zapcore.Field
	for i, f := range fields {
		var text string
		switch f.Type {
		case zapcore.StringType:
			text = f.String
		case zapcore.ByteStringType:
			text = string(f.Interface.([]byte))
		case zapcore.ErrorType:
			if err, ok := f.Interface.(error); ok && err != nil {
				text = err.Error()
			}
		case zapcore.StringerType:
			if s, ok := f.Interface.(fmt.Stringer); ok && s != nil {
				text = s.String()
			}
		default:
			continue
		}
		if !strings.Contains(text, "://") {
			continue
		}
		if out == nil {
			out = append([]zapcore.Field(nil), fields...)
		}
		out[i] = zap.String(f.Key, model.RedactText(text))
	}
	if out == nil {
		return fields
	}
	return out
}
