package vaultboot_test

import (
	"context"
	"log"
	"log/slog"
	"os"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
)

// A complete run: load the configuration, bootstrap Vault, print the
// summary. Running it again later changes nothing, or finishes what an
// interrupted run left half done.
func ExampleBootstrapper_Run() {
	cfg, err := vaultboot.LoadFile("conf/bootstrap.hcl")
	if err != nil {
		log.Fatal(err)
	}
	b, err := vaultboot.New(cfg, vaultboot.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		log.Fatal(err)
	}
	summary, err := b.Run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	summary.WriteJSON(os.Stdout)
}
