package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/octoacme/octoroll/model"
	"github.com/spf13/cobra"
)

func init() { register(lintCommand) }

func lintCommand(a *App) *cobra.Command {
	if a.Lint == nil {
		return nil
	}
	return &cobra.Command{
		Use:   "lint CATALOG|SPEC...",
		Short: "Validate catalogs and rollout specs offline, naming FILE:LINE:COL (- reads stdin)",
		Long: `Validate catalog files and rollout spec files offline, with the checks the server
applies when it loads them, naming each problem as FILE:LINE:COL: FIELD: message.
A file with "services:" at the top is a catalog, any other a rollout spec. A spec is
checked on its own: whether its service and versions exist is the server's pre-flight.

Exit codes: 0 every file is valid, 1 a file has problems, 2 usage.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("missing CATALOG or SPEC file")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			bad := 0
			for _, name := range args {
				var data []byte
				var err error
				if name == "-" {
					data, err = io.ReadAll(io.LimitReader(a.stdin, maxResponse))
				} else {
					data, err = os.ReadFile(name)
				}
				if err == nil {
					err = a.Lint(name, data)
				}
				if err == nil {
					continue
				}
				bad++
				for _, e := range model.Unjoin(err) {
					fmt.Fprintln(a.stderr, e)
				}
			}
			if bad > 0 {
				return &exitError{code: ExitError, msg: fmt.Sprintf("%d of %d files have problems", bad, len(args))}
			}
			return nil
		},
	}
}
