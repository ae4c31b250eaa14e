package main

import (
	"context"
	"io"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := loadConfig("serve", args)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	<-ctx.Done()
	return nil
}
