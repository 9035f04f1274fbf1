package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/orchestrator/runner"
	"github.com/edgeid/edgeid/orchestrator/ui"
)

// DefaultUIListen is where edgeid ui serves by default.
const DefaultUIListen = "127.0.0.1:8443"

// uiCmd serves the live trust-tree page of a run until interrupted.
func uiCmd(ctx context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ui", flag.ContinueOnError)
	var c common
	c.register(fs)
	listen := fs.String("listen", DefaultUIListen, "address to serve the page on (loopback unless --allow-remote)")
	allowRemote := fs.Bool("allow-remote", false, "allow a non-loopback --listen address and any Host header (the page has no login)")
	interval := fs.Duration("interval", 2*time.Second, "how often to read the run's status")
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
		return err
	}
	if err := ui.CheckListen(*listen, *allowRemote); err != nil {
		return cliutil.Usagef(fs, cmd.help, stderr, "%v", err)
	}
	r, err := inspectRunner(c, io.Discard)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	srv := ui.New(ui.Config{Source: runStatus{r}, Interval: *interval, AllowRemote: *allowRemote, Logger: logger})
	url := fmt.Sprintf("http://%s/", ln.Addr())
	// edgeid status prints the URL while the page is served.
	marker := uiURLFile(c)
	if err := os.WriteFile(marker, []byte(url+"\n"), 0o644); err != nil {
		logger.Warn("Cannot record the UI URL for edgeid status", "file", marker, "error", err)
	}
	defer os.Remove(marker)
	fmt.Fprintf(stdout, "edgeid ui: serving the trust tree of %s at %s\n", c.runDir, url)
	return ui.Serve(ctx, ln, srv)
}

// uiURLFile is where a running edgeid ui records its URL: in the run
// directory, or with --host in the host's state directory.
func uiURLFile(c common) string {
	if c.host != "" {
		return filepath.Join(c.hc.Root, "ui.url")
	}
	return filepath.Join(c.runDir, "ui.url")
}

// runningUIURL is the URL of the edgeid ui serving this run, or "" when
// none answers there.
func runningUIURL(c common) string {
	data, err := os.ReadFile(uiURLFile(c))
	if err != nil {
		return ""
	}
	url := strings.TrimSpace(string(data))
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return ""
	}
	conn.Close()
	return url
}

// runStatus is a run's status with its problems, as edgeid status shows it.
type runStatus struct{ r *runner.Runner }

func (s runStatus) Status(ctx context.Context) (*runner.Status, error) {
	st := s.r.Status(ctx)
	st.Problems = s.r.Check(st, time.Now())
	return st, nil
}
