// Command edgeid-bootstrap runs the Vault bootstrap:
//
//	edgeid-bootstrap vault --config conf/bootstrap.hcl
//
// It is the same command as `edgeid bootstrap vault`. Exit status: 0
// success (and help), 1 failure, 2 a malformed command line.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeid/edgeid/bootstrap/cli"
	"github.com/edgeid/edgeid/internal/cliutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	cliutil.Exit("edgeid-bootstrap", err)
}
