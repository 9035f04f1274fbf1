package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/internal/version"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, &out, &errOut)
	return cliutil.ExitCode(err), out.String(), errOut.String()
}

// Every command answers -h, -help and --help with its own help on stdout
// and exit status 0, and a flag it does not know with its usage on stderr
// and exit status 2, without doing anything.
func TestEveryCommandsHelpAndExitCodes(t *testing.T) {
	for _, c := range commands() {
		words := strings.Fields(strings.TrimPrefix(c.help.Usage, "edgeid "))
		subs := [][]string{{c.name}}
		switch c.name {
		case "bootstrap":
			subs = [][]string{words[:2]} // bootstrap vault
		case "kafka":
			subs = [][]string{{"kafka"}, {"kafka", "acls", "plan"}, {"kafka", "acls", "apply"}, {"kafka", "reproduce"}, {"kafka", "rewrap"}}
		}
		for _, sub := range subs {
			checkHelpAndExitCodes(t, sub)
		}
	}
}

func checkHelpAndExitCodes(t *testing.T, sub []string) {
	t.Helper()
	for _, h := range []string{"-h", "-help", "--help"} {
		code, out, errOut := run(append(sub, h)...)
		if code != cliutil.ExitOK {
			t.Errorf("edgeid %s %s: exit %d, want 0; stderr:\n%s", strings.Join(sub, " "), h, code, errOut)
		}
		if !strings.Contains(out, "Usage: edgeid "+strings.Join(sub, " ")) && !strings.Contains(out, "Usage: bootstrap vault") {
			t.Errorf("edgeid %s %s: no help on stdout:\n%s", strings.Join(sub, " "), h, out)
		}
	}
	code, out, errOut := run(append(sub, "--no-such-flag")...)
	if code != cliutil.ExitUsage {
		t.Errorf("edgeid %s --no-such-flag: exit %d, want 2", strings.Join(sub, " "), code)
	}
	if !strings.Contains(errOut, "no-such-flag") || !strings.Contains(errOut, "Usage:") || out != "" {
		t.Errorf("edgeid %s --no-such-flag: want the error and usage on stderr only; stdout %q, stderr:\n%s", strings.Join(sub, " "), out, errOut)
	}
}

func TestTopLevel(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string
		stderrWant string
	}{
		{nil, cliutil.ExitUsage, "", "no command"},
		{[]string{"frobnicate"}, cliutil.ExitUsage, "", `unknown command "frobnicate"`},
		{[]string{"help"}, cliutil.ExitOK, "Usage:", ""},
		{[]string{"-h"}, cliutil.ExitOK, "Usage:", ""},
		{[]string{"--help"}, cliutil.ExitOK, "Exit status: 0", ""},
		{[]string{"version"}, cliutil.ExitOK, "SPIRE " + version.SPIRE, ""},
		{[]string{"version", "extra"}, cliutil.ExitUsage, "", "unexpected argument"},
		{[]string{"validate", "-f", "/nonexistent/topology.hcl"}, cliutil.ExitFailure, "", ""},
		{[]string{"render"}, cliutil.ExitUsage, "", "render needs --out"},
		{[]string{"register"}, cliutil.ExitUsage, "", "needs --entries and --socket"},
		{[]string{"ui", "--listen", "0.0.0.0:8443"}, cliutil.ExitUsage, "", "not loopback"},
		{[]string{"ui", "--listen", ":8443"}, cliutil.ExitUsage, "", "--allow-remote"},
	} {
		code, out, errOut := run(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderrWant) {
			t.Errorf("edgeid %s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				strings.Join(tc.args, " "), code, out, errOut, tc.code, tc.stdout, tc.stderrWant)
		}
	}
	// Internal commands stay out of the help.
	_, out, _ := run("help")
	if strings.Contains(out, "kafka-demo") || strings.Contains(out, "kafka-gateway") {
		t.Errorf("edgeid help lists the internal kafka-demo:\n%s", out)
	}
}

// edgeid status names the UI of the run while one answers at the URL that
// edgeid ui recorded, and not after it stopped.
func TestRunningUIURL(t *testing.T) {
	c := common{runDir: t.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	if got := runningUIURL(c); got != "" {
		t.Errorf("no ui.url yet, got %q", got)
	}
	if err := os.WriteFile(uiURLFile(c), []byte(url+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := runningUIURL(c); got != url {
		t.Errorf("runningUIURL = %q, want %q", got, url)
	}
	ln.Close()
	if got := runningUIURL(c); got != "" {
		t.Errorf("after the UI stopped, runningUIURL = %q", got)
	}
}
