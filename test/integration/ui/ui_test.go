package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgeid/edgeid/test/harness"
)

// oneSite keeps the run light: one edge site whose workload SVID lives 20 s
// (a new one every ~10 s). Edge CA 3 min > 6 × 20 s; cloud CA 20 min > 6 × 3 min.
const oneSite = `trust_domain = "example.org"
cloud {
  ca_ttl        = "20m"
  x509_svid_ttl = "1m"
}
kubeedge {
  cluster = "test-cluster"
}
site "site-a" {
  ca_ttl        = "3m"
  x509_svid_ttl = "20s"
  node "edge-a-1" {}
  workload "deepstream/cam" {
    kind   = "deepstream"
    config = %q
  }
}
`

const workloadID = "spiffe://example.org/edge/site-a/deepstream/cam"

// chromiumPath finds Debian's Chromium; its absence fails the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run `make deps` (scripts/install-deps.sh installs Debian's chromium) or apt-get install chromium")
	return ""
}

func edgeid(bin string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "edgeid"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "EDGEID_CACHE=" + os.Getenv("EDGEID_CACHE")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// startRun brings up the one-site topology and returns the run directory
// and the flags that name it; `edgeid down` runs at cleanup.
func startRun(t *testing.T, bin string) (runDir string, common []string) {
	t.Helper()
	runDir = harness.ShortTempDir(t)
	config, err := filepath.Abs(filepath.Join(harness.RepoRoot(t), "conf", "deepstream", "test5_config.txt"))
	if err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(t.TempDir(), "topology.hcl")
	if err := os.WriteFile(topo, []byte(fmt.Sprintf(oneSite, config)), 0o644); err != nil {
		t.Fatal(err)
	}
	common = []string{"-f", topo, "--run-dir", runDir, "--bin-dir", bin}
	t.Cleanup(func() {
		if out, err := edgeid(bin, 2*time.Minute, append([]string{"down"}, common...)...); err != nil {
			t.Errorf("edgeid down: %v\n%s", err, out)
		}
	})
	start := time.Now()
	out, err := edgeid(bin, 6*time.Minute, append([]string{"up", "--step-timeout", "2m"}, common...)...)
	t.Logf("edgeid up (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("edgeid up: %v", err)
	}
	return runDir, common
}

// startUI runs `edgeid ui` on a free loopback port until the test ends
// and returns its URL once it answers.
func startUI(t *testing.T, bin string, common []string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "edgeid"), append([]string{"ui", "--listen", addr, "--interval", "1s"}, common...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("edgeid ui output:\n%s", out.String())
		}
	})
	url := "http://" + addr + "/"
	harness.Eventually(t, time.Minute, func() error {
		resp, err := http.Get(url + "api/status")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /api/status: %s", resp.Status)
		}
		return nil
	})
	return url
}

// apiStatus is the part of /api/status the test compares with the page.
type apiStatus struct {
	Status struct {
		Sites []struct {
			Name      string `json:"name"`
			Workloads []struct {
				SPIFFEID string `json:"spiffe_id"`
			} `json:"workloads"`
		} `json:"sites"`
		Processes []struct {
			Name string `json:"name"`
		} `json:"processes"`
	} `json:"status"`
}

func readAPIStatus(t *testing.T, url string) apiStatus {
	t.Helper()
	resp, err := http.Get(url + "api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st apiStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// fileSerial is the serial of the workload's SVID on disk.
func fileSerial(t *testing.T, runDir string) string {
	certs := harness.ReadCertsPEM(t, filepath.Join(runDir, "edge-a-1", "workloads", "deepstream_cam", "svid", "svid.pem"))
	return certs[0].SerialNumber.String()
}

// pageFacts is what the page shows, read in the browser.
type pageFacts struct {
	Sites      []string `json:"sites"`
	Workloads  []string `json:"workloads"`
	Serial     string   `json:"serial"`
	Countdown  string   `json:"countdown"`
	VaultRoot  string   `json:"vault_root"`
	VaultInt   string   `json:"vault_int"`
	ServerCAs  []string `json:"server_cas"`
	Processes  int      `json:"processes"`
	KafkaSiteA string   `json:"kafka_site_a"`
	Live       string   `json:"live"`
	Mark       string   `json:"mark"`
	Updates    int      `json:"updates"`
}

const factsJS = `(() => {
  const q = s => document.querySelector(s), all = s => [...document.querySelectorAll(s)];
  const serial = s => { const e = q(s + " .serial"); return e ? e.textContent : ""; };
  const w = '[data-key="workload:` + workloadID + `"]';
  return {
    sites: all("[data-site]").map(e => e.dataset.site),
    workloads: all('[data-key^="workload:"]').map(e => e.dataset.key.slice(9)),
    serial: serial(w),
    countdown: (q(w + " .countdown") || {}).textContent || "",
    vault_root: serial('[data-key="vault:root"]'),
    vault_int: serial('[data-key="vault:intermediate"]'),
    server_cas: all('[data-key^="server:"]').map(e => e.querySelector(".serial").textContent),
    processes: all("#processes tbody tr").length,
    kafka_site_a: (q('[data-kafka-site="site-a"] .count') || {}).textContent || "",
    live: q("#conn").textContent,
    mark: String(window.edgeidMark || ""),
    updates: window.edgeidUpdates || 0,
  };
})()`

// facts polls the page until ok accepts what it shows, for at most within.
func facts(t *testing.T, ctx context.Context, within time.Duration, what string, ok func(pageFacts) error) pageFacts {
	t.Helper()
	var f pageFacts
	var last error
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var err error
		if f, err = chromedp.Run(ctx, chromedp.Evaluate[pageFacts](factsJS)); err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		if last = ok(f); last == nil {
			return f
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s: not seen on the page within %s: %v; the page shows %+v", what, within, last, f)
	return f
}

// TestTrustTreePageLive brings up one cloud and one site, serves `edgeid
// ui`, and loads the page in headless Chromium: every site and workload of
// the run appears with its serial and a live countdown, the Vault root and
// intermediate and both CAs carry serials, every process has a row, and
// the Kafka messages of site-a are counted. Then the workload's SVID
// rotates (20 s TTL) and the page shows the new serial, the one now on
// disk, without a reload. A screenshot is kept as an artifact.
func TestTrustTreePageLive(t *testing.T) {
	chrome := chromiumPath(t)
	harness.SpireServerBin(t)
	harness.VaultBin(t)
	bin := harness.BuildEdgeidBinDir(t)
	runDir, common := startRun(t, bin)
	url := startUI(t, bin, common)
	if out, err := edgeid(bin, time.Minute, append([]string{"status"}, common...)...); err != nil || !strings.Contains(out, url) {
		t.Errorf("edgeid status does not name the running UI %s: %v\n%s", url, err, out)
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1400, 1100))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelAll := context.WithTimeout(ctx, 5*time.Minute)
	defer cancelAll()
	// The first action on a chromedp context starts the browser and ties
	// it to that action's context: start it on ctx, so that the bounded
	// waits below end only their own action.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}
	loadCtx, cancelLoad := context.WithTimeout(ctx, time.Minute)
	defer cancelLoad()
	if err := chromedp.Do(loadCtx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#tree"))); err != nil {
		t.Fatalf("loading %s in %s: %v", url, chrome, err)
	}
	mark := fmt.Sprintf("loaded-%d", time.Now().UnixNano())
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string]("window.edgeidMark = "+fmt.Sprintf("%q", mark))); err != nil {
		t.Fatal(err)
	}

	api := readAPIStatus(t, url)
	first := facts(t, ctx, 90*time.Second, "the whole tree", func(f pageFacts) error {
		for _, s := range api.Status.Sites {
			if !strings.Contains(strings.Join(f.Sites, " "), s.Name) {
				return fmt.Errorf("site %s missing", s.Name)
			}
			for _, w := range s.Workloads {
				if !strings.Contains(strings.Join(f.Workloads, " "), w.SPIFFEID) {
					return fmt.Errorf("workload %s missing", w.SPIFFEID)
				}
			}
		}
		switch {
		case len(api.Status.Sites) != 1 || f.Serial == "" || f.Serial == "?":
			return fmt.Errorf("no serial for %s", workloadID)
		case !strings.Contains(f.Countdown, "(in "):
			return fmt.Errorf("no live countdown: %q", f.Countdown)
		case f.VaultRoot == "" || f.VaultRoot == "?" || f.VaultInt == "" || f.VaultInt == "?":
			return fmt.Errorf("no Vault root or intermediate serial")
		case len(f.ServerCAs) != 2 || strings.Contains(strings.Join(f.ServerCAs, " "), "?"):
			return fmt.Errorf("want the cloud CA and the site CA with serials, got %v", f.ServerCAs)
		case f.Processes != len(api.Status.Processes) || f.Processes == 0:
			return fmt.Errorf("%d process rows, status has %d", f.Processes, len(api.Status.Processes))
		case f.KafkaSiteA == "" || f.KafkaSiteA == "0":
			return fmt.Errorf("no Kafka messages counted for site-a")
		case f.Live != "live":
			return fmt.Errorf("event stream %q", f.Live)
		}
		return nil
	})
	t.Logf("the page shows sites %v, workloads %v, serial %s, %s; Vault root %s, intermediate %s; CAs %v; %d processes; %s Kafka messages from site-a",
		first.Sites, first.Workloads, first.Serial, first.Countdown, first.VaultRoot, first.VaultInt, first.ServerCAs, first.Processes, first.KafkaSiteA)

	rotated := facts(t, ctx, 90*time.Second, "the rotated SVID", func(f pageFacts) error {
		onDisk := fileSerial(t, runDir)
		if f.Serial == first.Serial || f.Serial != onDisk {
			return fmt.Errorf("page serial %s, first %s, on disk %s", f.Serial, first.Serial, onDisk)
		}
		return nil
	})
	if rotated.Mark != mark {
		t.Fatalf("the page was reloaded (mark %q, want %q)", rotated.Mark, mark)
	}
	t.Logf("the page went from serial %s to %s (the SVID on disk) over %d server-sent events, without a reload",
		first.Serial, rotated.Serial, rotated.Updates)
	saveScreenshot(t, ctx, runDir)
}

// saveScreenshot writes the page as a PNG under the run directory and
// keeps a copy in $EDGEID_ARTIFACT_DIR (default $TMPDIR/edgeid-artifacts),
// since the run directory goes away with the test.
func saveScreenshot(t *testing.T, ctx context.Context, runDir string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(runDir, "artifacts", "ui-trust-tree.png")
	keep := os.Getenv("EDGEID_ARTIFACT_DIR")
	if keep == "" {
		keep = filepath.Join(os.TempDir(), "edgeid-artifacts")
	}
	kept := filepath.Join(keep, fmt.Sprintf("%s-%s.png", t.Name(), time.Now().Format("20060102-150405")))
	for _, p := range []string{path, kept} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot artifact: %s (%d bytes), kept at %s", path, len(png), kept)
}
