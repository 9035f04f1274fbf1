// Command edgeid-bootstrap runs the Vault bootstrap:
//
//	edgeid-bootstrap vault --config conf/bootstrap.hcl
//
// It is the same command as `edgeid bootstrap vault`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeid/edgeid/bootstrap/cli"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "edgeid-bootstrap:", err)
		if errors.Is(err, cli.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Run(ctx, args, os.Stdout, os.Stderr)
}
