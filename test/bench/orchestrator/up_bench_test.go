// Package orchestrator benchmarks `edgeid up`: the time from the command's
// start to the first workload SVID on disk (Vault bootstrap included), and
// the memory each edge site costs, for 1, 3 and 6 sites.
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

func BenchmarkUp(b *testing.B) {
	bin := harness.BuildEdgeidBinDir(b)
	harness.SpireServerBin(b)
	harness.VaultBin(b)
	config := filepath.Join(harness.RepoRoot(b), "conf", "deepstream", "test5_config.txt")
	type row struct {
		sites          int
		first, all     time.Duration
		rssSite, cloud float64
	}
	var rows []row
	for _, n := range []int{1, 3, 6} {
		b.Run(fmt.Sprintf("sites=%d", n), func(b *testing.B) {
			var firsts, alls []time.Duration
			var rss, cloud []float64
			for range b.N {
				for range runs {
					f, a, r, c := upOnce(b, bin, config, n)
					firsts, alls, rss, cloud = append(firsts, f), append(alls, a), append(rss, r), append(cloud, c)
				}
			}
			r := row{n, median(firsts), median(alls), medianF(rss), medianF(cloud)}
			rows = append(rows, r)
			b.ReportMetric(r.first.Seconds(), "s-to-first-SVID")
			b.ReportMetric(r.all.Seconds(), "s-to-all-SVIDs")
			b.ReportMetric(r.rssSite, "MB-RSS/site")
		})
	}
	fmt.Printf("\nedgeid up, median of %d runs (Vault bootstrap included):\n", runs)
	fmt.Printf("| sites | up → first workload SVID | up → every workload SVID | RSS per edge site | cloud RSS (Vault, server, agent, broker) |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Printf("| %d | %.1f s | %.1f s | %.0f MB | %.0f MB |\n", r.sites, r.first.Seconds(), r.all.Seconds(), r.rssSite, r.cloud)
	}
	if len(rows) == 3 {
		slope := (rows[2].all - rows[0].all).Seconds() / float64(rows[2].sites-rows[0].sites)
		fmt.Printf("slope: %.2f s per added site to every workload SVID\n", slope)
	}
}

// upOnce runs `edgeid up` for n sites in a fresh run directory and returns
// the time to the first and to the last workload SVID, the mean RSS of an
// edge site's processes and the cloud host's RSS, in MB.
func upOnce(b *testing.B, bin, config string, n int) (time.Duration, time.Duration, float64, float64) {
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
	var siteRSS float64
	for i := 1; i <= n; i++ {
		siteRSS += hostRSS(filepath.Join(runDir, fmt.Sprintf("edge-%d-1", i)))
	}
	return first, all, siteRSS / float64(n), hostRSS(filepath.Join(runDir, "cloud"))
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
		data, err := os.ReadFile(pf)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
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

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration{}, d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func medianF(f []float64) float64 {
	s := append([]float64{}, f...)
	sort.Float64s(s)
	return s[len(s)/2]
}
