package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

// config is the run's shape; every knob has an environment variable so
// that `make bench` and a quick local run use the same code.
type config struct {
	sizes       []int         // FLEET_SIZES, default 100,1000,5000
	datastores  []string      // FLEET_DATASTORES, default sqlite,postgres
	concurrency int           // FLEET_CONCURRENCY, attestations in flight, default 32
	storm       int           // FLEET_STORM_CONCURRENCY, default 128
	agentTTL    time.Duration // FLEET_AGENT_TTL, the agent SVID TTL, default 5m
	steady      time.Duration // FLEET_STEADY, the renewal window, default 15s
	phaseLimit  time.Duration // FLEET_PHASE_LIMIT, bound of one attest/storm phase, default 150s
	profileN    int           // FLEET_PROFILE_N, the size whose attestation is profiled, default 5000
	profileSecs int           // FLEET_PROFILE_SECONDS, default 10
	rounds      int           // FLEET_ROUNDS, x509pop/kubeedge pairs per size and datastore, default 1
}

func loadConfig(b *testing.B) config {
	c := config{
		sizes:       envInts(b, "FLEET_SIZES", "100,1000,5000"),
		datastores:  strings.Split(envOr("FLEET_DATASTORES", "sqlite,postgres"), ","),
		concurrency: envInts(b, "FLEET_CONCURRENCY", "32")[0],
		storm:       envInts(b, "FLEET_STORM_CONCURRENCY", "128")[0],
		agentTTL:    envDuration(b, "FLEET_AGENT_TTL", "5m"),
		steady:      envDuration(b, "FLEET_STEADY", "15s"),
		phaseLimit:  envDuration(b, "FLEET_PHASE_LIMIT", "150s"),
		profileN:    envInts(b, "FLEET_PROFILE_N", "5000")[0],
		profileSecs: envInts(b, "FLEET_PROFILE_SECONDS", "10")[0],
		rounds:      envInts(b, "FLEET_ROUNDS", "1")[0],
	}
	for _, ds := range c.datastores {
		if ds != "sqlite" && ds != "postgres" {
			b.Fatalf("FLEET_DATASTORES: %q is neither sqlite nor postgres", ds)
		}
	}
	return c
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInts(b *testing.B, name, def string) []int {
	var out []int
	for _, f := range strings.Split(envOr(name, def), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("%s: %q is not a positive integer", name, f)
		}
		out = append(out, n)
	}
	return out
}

func envDuration(b *testing.B, name, def string) time.Duration {
	d, err := time.ParseDuration(envOr(name, def))
	if err != nil || d <= 0 {
		b.Fatalf("%s: %v", name, err)
	}
	return d
}

// BenchmarkFleet attests N simulated edge nodes to one real SPIRE server,
// for every size, datastore and attestor, and prints one table row per
// case. It runs once whatever b.N is: run it with -benchtime 1x.
func BenchmarkFleet(b *testing.B) {
	cfg := loadConfig(b)
	w := newWorld(b, cfg)
	fmt.Printf("fleet: SPIRE %s server, agent SVID TTL %s (renewal every %s per agent), %d attestations in flight, storm %d in flight, GOMAXPROCS %d\n",
		harness.Versions(b)["SPIRE_VERSION"], cfg.agentTTL, renewalPeriod(cfg.agentTTL), cfg.concurrency, cfg.storm, runtime.GOMAXPROCS(0))
	var rows []row
	for _, n := range cfg.sizes {
		for _, ds := range cfg.datastores {
			// The anchor and the subject back to back on the same machine
			// state, taking turns at going first from round to round.
			for round := range cfg.rounds {
				pair := []Attestor{X509PoP{}, KubeEdge{TrustDomain: harness.DefaultTrustDomain}}
				if round%2 == 1 {
					pair[0], pair[1] = pair[1], pair[0]
				}
				for _, a := range pair {
					r := w.runCase(b, a, ds, n)
					r.round = round + 1
					printRows([]row{r}, false)
					rows = append(rows, r)
				}
			}
		}
	}
	fmt.Println("\nfleet: all cases")
	printRows(rows, true)
	printComparison(rows)
}

// row is one case's figures.
type row struct {
	n, round       int
	ds, plugin     string
	attest         Result
	attestUse      harness.Window
	attestDB       harness.Window // PostgreSQL (postmaster + backends); zero on SQLite
	genCPU         time.Duration  // the load generator's own CPU during attestation
	rate           float64
	renew          Result
	renewUse       harness.Window
	renewDB        harness.Window
	storm          Result
	profile        string
	profileShares  []float64
	profileTopText string
}

// runCase runs the three phases against a fresh server and datastore.
func (w *world) runCase(b *testing.B, a Attestor, ds string, n int) row {
	r := row{n: n, ds: ds, plugin: a.Type()}
	nodes := w.nodesFor(b, a, n)
	profPort := harness.FreePort(b)
	s := w.startServer(b, a, ds, profPort)
	defer s.Stop(b)
	client, err := NewClient(s.Addr, s.Config.TrustDomain, s.BundlePEM(b), a)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	w.attestPhase(b, ctx, &r, s, client, nodes, profPort)
	w.renewPhase(ctx, &r, s, client, nodes)
	w.stormPhase(b, ctx, &r, s, client, nodes)
	return r
}

func (w *world) attestPhase(b *testing.B, ctx context.Context, r *row, s *harness.SpireServer, c *Client, nodes []*Node, profPort int) {
	var profErr chan error
	if r.n == w.cfg.profileN {
		r.profile = filepath.Join(w.profiles, fmt.Sprintf("attest-%s-%s-%d.pb.gz", r.plugin, r.ds, r.n))
		profErr = make(chan error, 1)
		go func() { profErr <- FetchCPUProfile(ctx, profPort, w.cfg.profileSecs, r.profile) }()
		time.Sleep(200 * time.Millisecond) // let the profiler start first
	}
	phaseCtx, cancel := context.WithTimeout(ctx, w.cfg.phaseLimit)
	defer cancel()
	use, db := harness.StartUsage(s.Proc.PID()), w.dbUsage(r.ds)
	gen0 := selfCPU()
	r.attest = RunAll(phaseCtx, nodes, w.cfg.concurrency, 0, c.Attest)
	r.genCPU = selfCPU() - gen0
	r.attestUse, r.attestDB = use.Stop(), db.Stop()
	if profErr == nil {
		return
	}
	// Wait for the profile before the next phase, so it holds attestation only.
	if err := <-profErr; err != nil {
		b.Logf("fleet: no profile: %v", err)
		r.profile = ""
		return
	}
	if shares, err := Shares(ctx, r.profile); err == nil {
		r.profileShares = shares
	} else {
		b.Logf("fleet: %v", err)
	}
	if top, err := Top(ctx, r.profile, 15); err == nil {
		r.profileTopText = top
	}
	printProfile(*r, w.cfg.profileSecs)
}

// renewPhase offers the renewal rate of n agents whose SVIDs last
// agentTTL (see renewalPeriod).
func (w *world) renewPhase(ctx context.Context, r *row, s *harness.SpireServer, c *Client, nodes []*Node) {
	r.rate = float64(len(nodes)) / renewalPeriod(w.cfg.agentTTL).Seconds()
	// Only nodes that attested can renew.
	attested := nodes[:min(len(nodes), r.attest.Ops)]
	if len(attested) == 0 {
		return
	}
	use, db := harness.StartUsage(s.Proc.PID()), w.dbUsage(r.ds)
	r.renew = RunRate(ctx, attested, r.rate, w.cfg.steady, 4*w.cfg.concurrency, c.Attest)
	r.renewUse, r.renewDB = use.Stop(), db.Stop()
}

// stormPhase stops the server, starts it again, and has every node attest
// at once, retrying while the server is not yet serving. The clock starts
// when the new server process starts.
func (w *world) stormPhase(b *testing.B, ctx context.Context, r *row, s *harness.SpireServer, c *Client, nodes []*Node) {
	attested := nodes[:min(len(nodes), r.attest.Ops)]
	if len(attested) == 0 {
		return
	}
	s.Stop(b)
	phaseCtx, cancel := context.WithTimeout(ctx, w.cfg.phaseLimit)
	defer cancel()
	s.Proc.Restart(b)
	r.storm = RunAll(phaseCtx, attested, w.cfg.storm, 250*time.Millisecond, c.Attest)
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dbUsage samples PostgreSQL's CPU (the postmaster and its backends) on
// the postgres datastore; on SQLite the datastore runs inside the server.
func (w *world) dbUsage(ds string) *harness.Usage {
	if ds != "postgres" || w.pg == nil {
		return nil
	}
	return harness.StartUsage(w.pg.Proc.PID())
}

// spireBackdate is how far SPIRE's CA backdates NotBefore
// (pkg/server/ca/ca.go).
const spireBackdate = 10 * time.Second

// renewalPeriod is how often one spire-agent renews an agent SVID of ttl:
// it rotates once less than half the certificate's lifetime (NotAfter -
// NotBefore, that is ttl + the backdate) remains
// (pkg/common/rotationutil), so (ttl - backdate) / 2 after issue.
func renewalPeriod(ttl time.Duration) time.Duration {
	return max((ttl-spireBackdate)/2, time.Second)
}
