package fleet

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Category groups the stacks of a CPU profile by what they were doing. A
// sample counts for every category one of its frames matches, so the
// shares may add up to more than 100 %.
type Category struct {
	Name  string
	Focus string // pprof -focus regular expression
}

// Categories is where a SPIRE server's attestation time can go.
var Categories = []Category{
	{"AttestAgent handler", `agent/v1\.\(\*Service\)\.AttestAgent`},
	{"node attestor (built-in code, or the gRPC call to the plugin)", `pkg/server/plugin/nodeattestor`},
	{"datastore (sqlstore, gorm, sqlite3/pgx)", `pkg/server/datastore|jinzhu/gorm|go-sqlite3|jackc/pgx|lib/pq|database/sql`},
	{"signing the agent SVID (server CA)", `pkg/server/ca\.`},
	{"TLS handshakes (a new connection per attestation)", `crypto/tls\..*[Hh]andshake`},
	{"authorization middleware (OPA policy)", `authorizationMiddleware|open-policy-agent`},
	{"logging (logrus)", `sirupsen/logrus`},
	{"entry cache (authorized entries)", `authorizedentries|AuthorizedEntryFetcher|entrycache`},
	{"garbage collector", `runtime\.gcBgMarkWorker`},
}

// FetchCPUProfile takes a CPU profile of seconds from the net/http/pprof
// endpoint SPIRE serves on localhost:port (profiling_enabled +
// profiling_port), and writes it to path.
func FetchCPUProfile(ctx context.Context, port, seconds int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://localhost:%d/debug/pprof/profile?seconds=%d", port, seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fleet: profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fleet: profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("fleet: profile: %w", err)
	}
	return f.Close()
}

var showingRE = regexp.MustCompile(`Showing nodes accounting for ([^,]+), ([0-9.]+)% of ([^ ]+) total`)

// Shares returns, for each category, the share of the profile's samples
// whose stack matches it, with `go tool pprof`.
func Shares(ctx context.Context, path string) ([]float64, error) {
	out := make([]float64, len(Categories))
	for i, c := range Categories {
		text, err := pprof(ctx, "-top", "-nodecount=1000000", "-nodefraction=0", "-focus="+c.Focus, path)
		if err != nil {
			return nil, err
		}
		if m := showingRE.FindStringSubmatch(text); m != nil {
			out[i], _ = strconv.ParseFloat(m[2], 64)
		}
	}
	return out, nil
}

// Top returns `go tool pprof -top` of the profile, n entries by flat and
// n by cumulative time.
func Top(ctx context.Context, path string, n int) (string, error) {
	flat, err := pprof(ctx, "-top", "-nodecount="+strconv.Itoa(n), path)
	if err != nil {
		return "", err
	}
	cum, err := pprof(ctx, "-top", "-cum", "-nodecount="+strconv.Itoa(n), path)
	if err != nil {
		return "", err
	}
	return flat + "\n" + cum, nil
}

func pprof(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("fleet: go tool pprof %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
