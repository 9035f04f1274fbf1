// Package orchestrator benchmarks `edgeid up`: the time from the command's
// start to the first workload SVID on disk (Vault bootstrap included), and
// the memory each edge site costs, and the cloud SPIRE server's load from
// its N edge servers, for 1, 3, 6 and 12 sites.
package orchestrator

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

const topoHead = `trust_domain = "example.org"
cloud {
  ca_ttl        = "24h"
  x509_svid_ttl = "1h"
}
`

const siteTmpl = `site "site-%[1]d" {
  ca_ttl        = "2h"
  x509_svid_ttl = "5m"
  node "edge-%[1]d-1" {}
  workload "deepstream/cam" {
    kind   = "deepstream"
    config = %[2]q
  }
}
`

// runs is how many times each size is brought up; the median is reported.
const runs = 3

// steadyWindow is how long the cloud server's CPU is sampled once every
// workload SVID is on disk: the load its edge servers and agents make when
// nothing starts (SVID renewals at x509_svid_ttl, bundle and entry syncs).
const steadyWindow = 20 * time.Second

// siteCounts are the sizes brought up; 12 sites (about 36 SPIRE
// processes, 12 helpers, Vault and the broker) fit this 2-core machine.
var siteCounts = []int{1, 3, 6, 12}

func BenchmarkUp(b *testing.B) {
	bin := harness.BuildEdgeidBinDir(b)
	harness.SpireServerBin(b)
	harness.VaultBin(b)
	config := filepath.Join(harness.RepoRoot(b), "conf", "deepstream", "test5_config.txt")
	var rows []result
	for _, n := range siteCounts {
		b.Run(fmt.Sprintf("sites=%d", n), func(b *testing.B) {
			var all []result
			for range b.N {
				for range runs {
					all = append(all, upOnce(b, bin, config, n))
				}
			}
			r := medianResult(all)
			rows = append(rows, r)
			b.ReportMetric(r.first.Seconds(), "s-to-first-SVID")
			b.ReportMetric(r.all.Seconds(), "s-to-all-SVIDs")
			b.ReportMetric(r.rssSite, "MB-RSS/site")
			b.ReportMetric(r.serverCPU, "%CPU-cloud-server")
		})
	}
	fmt.Printf("\nedgeid up, median of %d runs (Vault bootstrap included); cloud server load over %s once every SVID is out:\n", runs, steadyWindow)
	fmt.Printf("| sites | up → first workload SVID | up → every workload SVID | RSS per edge site | cloud host RSS (Vault, server, agent, broker, gateway, Prometheus) | cloud SPIRE server CPU, steady (plugins included) | cloud SPIRE server RSS |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Printf("| %d | %.1f s | %.1f s | %.0f MB | %.0f MB | %.1f %% | %.0f MB |\n", r.sites, r.first.Seconds(), r.all.Seconds(), r.rssSite, r.cloud, r.serverCPU, r.serverRSS)
	}
	if len(rows) > 1 {
		a, z := rows[0], rows[len(rows)-1]
		fmt.Printf("per added site: %.2f s to every workload SVID, %.1f MB of cloud RSS, %.2f %% of cloud server CPU\n",
			(z.all-a.all).Seconds()/float64(z.sites-a.sites), (z.cloud-a.cloud)/float64(z.sites-a.sites), (z.serverCPU-a.serverCPU)/float64(z.sites-a.sites))
	}
}

// result is one `edgeid up` of a topology with sites sites.
type result struct {
	sites      int
	first, all time.Duration
	// rssSite is the mean RSS of one edge site's processes; cloud is the
	// cloud host's (MB).
	rssSite, cloud float64
	// serverCPU is the cloud SPIRE server's CPU (percent of one core,
	// plugins included) over steadyWindow; serverRSS its RSS (MB).
	serverCPU, serverRSS float64
}

// medianResult takes each figure's median over runs.
func medianResult(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return medianF(v)
	}
	return result{
		sites:     rs[0].sites,
		first:     time.Duration(pick(func(r result) float64 { return float64(r.first) })),
		all:       time.Duration(pick(func(r result) float64 { return float64(r.all) })),
		rssSite:   pick(func(r result) float64 { return r.rssSite }),
		cloud:     pick(func(r result) float64 { return r.cloud }),
		serverCPU: pick(func(r result) float64 { return r.serverCPU }),
		serverRSS: pick(func(r result) float64 { return r.serverRSS }),
	}
}

// upOnce runs `edgeid up` for n sites in a fresh run directory and
// measures it.
func upOnce(b *testing.B, bin, config string, n int) result {
	dir := b.TempDir()
	runDir := harness.ShortTempDir(b)
	src := topoHead
	for i := 1; i <= n; i++ {
		src += fmt.Sprintf(siteTmpl, i, config)
	}
	topo := filepath.Join(dir, "topology.hcl")
	if err := os.WriteFile(topo, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"-f", topo, "--run-dir", runDir, "--bin-dir", bin}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "edgeid"), append([]string{"up"}, args...)...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		down := exec.Command(filepath.Join(bin, "edgeid"), append([]string{"down", "--purge"}, args...)...)
		if o, err := down.CombinedOutput(); err != nil {
			b.Errorf("edgeid down: %v\n%s", err, o)
		}
	}()
	var first, all time.Duration
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for all == 0 {
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("edgeid up: %v\n%s", err, out)
			}
			done = nil
		case <-ticker.C:
		}
		ready := countValidSVIDs(runDir)
		if ready > 0 && first == 0 {
			first = time.Since(start)
		}
		if ready == n {
			all = time.Since(start)
		}
		if done == nil && all == 0 {
			b.Fatalf("edgeid up finished but only %d of %d workload SVIDs are on disk", ready, n)
		}
	}
	if done != nil {
		if err := <-done; err != nil {
			b.Fatalf("edgeid up: %v\n%s", err, out)
		}
	}
	r := result{sites: n, first: first, all: all, cloud: hostRSS(filepath.Join(runDir, "cloud"))}
	for i := 1; i <= n; i++ {
		r.rssSite += hostRSS(filepath.Join(runDir, fmt.Sprintf("edge-%d-1", i)))
	}
	r.rssSite /= float64(n)
	server := pidOf(filepath.Join(runDir, "cloud", "pids", "spire-server.pid"))
	if server == 0 {
		b.Fatalf("no cloud spire-server running under %s", runDir)
	}
	use := harness.StartUsage(server)
	time.Sleep(steadyWindow)
	w := use.Stop()
	r.serverCPU = w.TotalCPU()
	r.serverRSS = float64(w.ServerRSSKiB+w.PluginRSSKiB) / 1024
	return r
}

// pidOf reads a PID file; 0 when there is none.
func pidOf(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

func countValidSVIDs(runDir string) int {
	paths, _ := filepath.Glob(filepath.Join(runDir, "*", "workloads", "*", "svid", "svid.pem"))
	n := 0
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		block, _ := pem.Decode(data)
		if block == nil {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil && time.Now().Before(c.NotAfter) && time.Since(c.NotBefore) < 2*time.Minute {
			n++
		}
	}
	return n
}

// hostRSS sums the resident memory, in MB, of every process a host runs
// (from its PID files) and of their children (plugins, workloads).
func hostRSS(hostDir string) float64 {
	pidFiles, _ := filepath.Glob(filepath.Join(hostDir, "pids", "*.pid"))
	var kb int64
	for _, pf := range pidFiles {
		pid := pidOf(pf)
		if pid == 0 {
			continue
		}
		for _, p := range append([]int{pid}, descendants(pid)...) {
			kb += harness.RSSKB(p)
		}
	}
	return float64(kb) / 1024
}

func descendants(pid int) []int {
	var out []int
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(children)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
			out = append(out, descendants(c)...)
		}
	}
	return out
}

func medianF(f []float64) float64 {
	s := append([]float64{}, f...)
	sort.Float64s(s)
	return s[len(s)/2]
}
