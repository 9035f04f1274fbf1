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

// The same from a configuration file in one call, as the CLI and the
// orchestrator run it.
func ExampleRunFile() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	summary, err := vaultboot.RunFile(context.Background(), "conf/bootstrap.hcl", vaultboot.Options{Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	summary.WriteJSON(os.Stdout)
}
