// Command edgeid builds and runs nested cloud/edge SPIRE deployments from
// one topology file. See `edgeid help`. Exit status: 0 success (and
// help), 1 failure, 2 a malformed command line.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/orchestrator/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	cliutil.Exit("edgeid", err)
}
