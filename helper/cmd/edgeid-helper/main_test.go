package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/internal/version"
)

func TestRunReportsConfigErrors(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "helper.conf")
	if err := os.WriteFile(conf, []byte("svid_file_name = \"a\"\nbogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"-config", conf}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), conf+":2,1-6: unknown key \"bogus\"") {
		t.Fatalf("error %v", err)
	}
	if cliutil.ExitCode(err) != cliutil.ExitFailure {
		t.Errorf("a bad configuration exits %d, want 1", cliutil.ExitCode(err))
	}
	if err := run(context.Background(), []string{"-config", filepath.Join(dir, "missing.conf")}, io.Discard, io.Discard); err == nil {
		t.Fatal("missing file accepted")
	}
}

// Help, version and malformed command lines, with their exit codes.
func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, errs string
	}{
		{[]string{"-h"}, cliutil.ExitOK, "Usage: edgeid-helper", ""},
		{[]string{"--help"}, cliutil.ExitOK, "-config", ""},
		{[]string{"version"}, cliutil.ExitOK, "edgeid-helper dev", ""},
		{[]string{"-nope"}, cliutil.ExitUsage, "", "flag provided but not defined: -nope"},
		{[]string{"stray"}, cliutil.ExitUsage, "", `unexpected argument "stray"`},
	} {
		var out, errOut bytes.Buffer
		code := cliutil.ExitCode(run(context.Background(), tc.args, &out, &errOut))
		if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errOut.String(), tc.errs) {
			t.Errorf("edgeid-helper %s: exit %d, stdout %q, stderr %q; want %d, %q, %q", strings.Join(tc.args, " "), code, out.String(), errOut.String(), tc.code, tc.stdout, tc.errs)
		}
	}
	var out bytes.Buffer
	_ = run(context.Background(), []string{"version"}, &out, io.Discard)
	if !strings.Contains(out.String(), "SPIRE "+version.SPIRE) {
		t.Errorf("version: %q", out.String())
	}
}
