package vaultboot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunFileReportsFileAndConfigProblems(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.hcl")
	if _, err := RunFile(context.Background(), missing, Options{}); err == nil || !strings.Contains(err.Error(), "none.hcl") {
		t.Fatalf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("state_dir = \"s\"\nvault {\n  address = \"vault:8200\"\n}\ninit {\n  insecure_plaintext_shares = true\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := RunFile(context.Background(), bad, Options{})
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), bad+": vault.address: must be an http:// or https:// URL") {
		t.Fatalf("invalid config: %v", err)
	}
	if ce.Problems[0].Range.Start.Line != 3 {
		t.Fatalf("vault.address at line %d, want 3", ce.Problems[0].Range.Start.Line)
	}
}

func TestRunFileReachesVault(t *testing.T) {
	// A Vault that is not there: the run gets past the configuration and
	// fails waiting for Vault, within the configured wait.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "b.hcl")
	text := "state_dir = \"s\"\nvault {\n  address = \"http://127.0.0.1:1\"\n  wait_timeout = \"1s\"\n  request_timeout = \"1s\"\n}\ninit {\n  insecure_plaintext_shares = true\n}\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var steps []string
	_, err := RunFile(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), AfterStep: func(s string) { steps = append(steps, s) }})
	if err == nil || len(steps) != 0 {
		t.Fatalf("error %v after steps %v, want a failed wait", err, steps)
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		t.Fatalf("configuration refused: %v", err)
	}
}
