package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunReportsConfigErrors(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "helper.conf")
	if err := os.WriteFile(conf, []byte("svid_file_name = \"a\"\nbogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"-config", conf})
	if err == nil || !strings.Contains(err.Error(), conf+":2,1-6: unknown key \"bogus\"") {
		t.Fatalf("error %v", err)
	}
	if err := run(context.Background(), []string{"-config", filepath.Join(dir, "missing.conf")}); err == nil {
		t.Fatal("missing file accepted")
	}
	if err := run(context.Background(), []string{"-nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
