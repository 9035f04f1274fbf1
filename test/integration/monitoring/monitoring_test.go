package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

const topology = `trust_domain = "example.org"
cloud {
  ca_ttl        = "30m"
  x509_svid_ttl = "1m"
}
kubeedge {
  cluster = "mon-cluster"
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

type run struct {
	t      *testing.T
	bin    string
	dir    string
	common []string
	prom   string
}

func (r *run) edgeid(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "edgeid"), append(args, r.common...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "EDGEID_CACHE=" + os.Getenv("EDGEID_CACHE")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// query asks Prometheus's HTTP API and decodes data into v.
func (r *run) query(path string, params url.Values, v any) error {
	resp, err := http.Get(r.prom + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return err
	}
	if body.Status != "success" {
		return fmt.Errorf("prometheus %s: status %s", path, body.Status)
	}
	return json.Unmarshal(body.Data, v)
}

type target struct {
	Labels    map[string]string `json:"labels"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (r *run) alertState(name, instance string) string {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	if err := r.query("/api/v1/alerts", nil, &data); err != nil {
		return "error: " + err.Error()
	}
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == name && a.Labels["instance"] == instance {
			return a.State
		}
	}
	return "inactive"
}

func (r *run) pid(host, service string) int {
	data, _ := os.ReadFile(filepath.Join(r.dir, host, "pids", service+".pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

func (r *run) kill(host, service string) {
	pid := r.pid(host, service)
	if pid == 0 {
		r.t.Fatalf("%s/%s has no pid", host, service)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	harness.Eventually(r.t, 10*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("%s/%s (pid %d) still runs", host, service, pid)
		}
		return nil
	})
	r.t.Logf("killed %s/%s (pid %d)", host, service, pid)
}

// TestPrometheusWatchesTheRun brings a one-site run up and checks, through
// its own Prometheus's API, that every target is up, that the helper's
// rotations land in its latency histogram, that EdgeidHelperNotReady fires when the helper
// is killed and resolves when `edgeid up` brings it back, and that
// `edgeid status --check` fails within a scrape interval of a killed agent
// and passes again once it is back.
func TestPrometheusWatchesTheRun(t *testing.T) {
	harness.PrometheusBin(t)
	harness.RequireCommand(t, "kcat")
	r := &run{t: t, bin: harness.BuildEdgeidBinDir(t), dir: harness.ShortTempDir(t)}
	config := filepath.Join(harness.RepoRoot(t), "conf", "deepstream", "test5_config.txt")
	topo := filepath.Join(t.TempDir(), "topology.hcl")
	if err := os.WriteFile(topo, []byte(fmt.Sprintf(topology, config)), 0o644); err != nil {
		t.Fatal(err)
	}
	r.common = []string{"-f", topo, "--run-dir", r.dir, "--bin-dir", r.bin}
	t.Cleanup(func() {
		if out, err := r.edgeid(2*time.Minute, "down"); err != nil {
			t.Errorf("edgeid down: %v\n%s", err, out)
		}
	})
	if out, err := r.edgeid(6*time.Minute, "up", "--step-timeout", "2m", "--supervise"); err != nil {
		t.Fatalf("edgeid up --supervise: %v\n%s", err, out)
	}
	out, err := r.edgeid(time.Minute, "status")
	if err != nil {
		t.Fatalf("edgeid status: %v\n%s", err, out)
	}
	t.Logf("edgeid status:\n%s", out)
	var st struct {
		Prometheus *struct {
			Addr string `json:"addr"`
		} `json:"prometheus"`
	}
	js, _ := r.edgeid(time.Minute, "status", "--json")
	if err := json.Unmarshal([]byte(js), &st); err != nil || st.Prometheus == nil {
		t.Fatalf("status --json names no Prometheus: %v\n%s", err, js)
	}
	r.prom = st.Prometheus.Addr
	if !strings.Contains(out, "Prometheus "+r.prom) {
		t.Errorf("edgeid status does not print the Prometheus URL %s", r.prom)
	}
	r.allTargetsUp()
	r.rulesMetricsExist()
	r.rotationsCounted()
	r.supervisorRestartsAKilledHelper()
	// From here on nothing restarts what the test kills but `edgeid up`.
	r.stopSupervisor()
	r.helperAlertFiresAndResolves()
	r.checkFailsOnAKilledAgent()
}

func (r *run) allTargetsUp() {
	t := r.t
	want := []string{"vault", "spire-server", "spire-agent", "edgeid-helper", "prometheus", "edgeid-orchestrator"}
	harness.Eventually(t, 90*time.Second, func() error {
		var data struct {
			Active []target `json:"activeTargets"`
		}
		if err := r.query("/api/v1/targets", nil, &data); err != nil {
			return err
		}
		jobs := map[string]int{}
		for _, tg := range data.Active {
			if tg.Health != "up" {
				return fmt.Errorf("target %s (%s) is %s: %s", tg.Labels["instance"], tg.Labels["job"], tg.Health, tg.LastError)
			}
			jobs[tg.Labels["job"]]++
		}
		for _, j := range want {
			if jobs[j] == 0 {
				return fmt.Errorf("no %s target among %v", j, jobs)
			}
		}
		t.Logf("every target is up: %v", jobs)
		return nil
	})
}

// rulesMetricsExist: the SPIRE metrics the alert rules and the dashboard
// name are what this SPIRE exports (the agents attested, the CAs were
// prepared), so that the rules cannot silently watch nothing.
func (r *run) rulesMetricsExist() {
	for _, q := range []string{
		`spire_server_rpc_agent_v1_agent_attest_agent{status="OK"}`,
		`spire_server_ca_manager_x509_ca_prepare{status="OK"}`,
		`spire_server_manager_x509_ca_rotate_expiration`,
		`spire_server_manager_x509_ca_rotate_ttl`,
		`edgeid_helper_svid_lifetime_seconds`,
		`edgeid_kafkagw_decisions_total`,
	} {
		r.requireResult(q)
	}
}

// requireResult waits up to a minute for the PromQL query q to return a
// result (for a comparison: to be true).
func (r *run) requireResult(q string) {
	r.t.Helper()
	harness.Eventually(r.t, time.Minute, func() error {
		var data struct {
			Result []any `json:"result"`
		}
		if err := r.query("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
			return err
		}
		if len(data.Result) == 0 {
			return fmt.Errorf("Prometheus has no result for %s", q)
		}
		return nil
	})
}

func (r *run) rotationsCounted() {
	harness.Eventually(r.t, 90*time.Second, func() error {
		var data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		}
		q := `edgeid_helper_rotation_duration_seconds_count{job="edgeid-helper",stage="signal"}`
		if err := r.query("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
			return err
		}
		if len(data.Result) == 0 || len(data.Result[0].Value) < 2 {
			return fmt.Errorf("no %s yet", q)
		}
		n, _ := strconv.ParseFloat(fmt.Sprint(data.Result[0].Value[1]), 64)
		if n < 2 {
			return fmt.Errorf("%v rotation(s) in the latency histogram; waiting for one after the first SVID (20 s SVIDs)", n)
		}
		r.t.Logf("Prometheus has %v rotations in the helper's latency histogram (push to signal)", n)
		return nil
	})
}

// supervisorRestartsAKilledHelper: `up --supervise` left `edgeid supervise`
// running; it brings a killed helper back by itself, and its own metrics,
// scraped by Prometheus as job edgeid-orchestrator, count the stopped
// service and the successful converge and show the service up again.
func (r *run) supervisorRestartsAKilledHelper() {
	t := r.t
	const helper = "helper-deepstream_cam"
	before := r.pid("edge-a-1", helper)
	r.kill("edge-a-1", helper)
	harness.Eventually(t, time.Minute, func() error {
		if p := r.pid("edge-a-1", helper); p == 0 || p == before || syscall.Kill(p, 0) != nil {
			return fmt.Errorf("the supervisor has not restarted %s yet (pid file: %d)", helper, p)
		}
		return nil
	})
	t.Logf("the supervisor restarted edge-a-1/%s (pid %d → %d)", helper, before, r.pid("edge-a-1", helper))
	for _, q := range []string{
		`edgeid_orchestrator_services_found_stopped_total{job="edgeid-orchestrator",service="edge-a-1/` + helper + `"} >= 1`,
		`edgeid_orchestrator_converges_total{job="edgeid-orchestrator",result="ok"} >= 1`,
		`edgeid_orchestrator_service_up{job="edgeid-orchestrator",host="edge-a-1",service="` + helper + `"} == 1`,
	} {
		r.requireResult(q)
		t.Logf("Prometheus: %s", q)
	}
	// The restart may have been scraped as the helper being down: wait
	// until Prometheus sees it up and the alert is quiet again, so that
	// the next step starts from a clean state.
	instance := "edge-a-1/" + helper
	r.requireResult(`up{job="edgeid-helper",instance="` + instance + `"} == 1`)
	harness.Eventually(t, 90*time.Second, func() error {
		if s := r.alertState("EdgeidHelperNotReady", instance); s != "inactive" {
			return fmt.Errorf("EdgeidHelperNotReady is %s after the supervised restart", s)
		}
		return nil
	})
}

// stopSupervisor stops the detached `edgeid supervise`.
func (r *run) stopSupervisor() {
	data, err := os.ReadFile(filepath.Join(r.dir, "supervisor.pid"))
	if err != nil {
		r.t.Fatalf("no supervisor.pid after up --supervise: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if pid <= 0 || syscall.Kill(pid, syscall.SIGTERM) != nil {
		r.t.Fatalf("the supervisor (pid %d) does not run", pid)
	}
	harness.Eventually(r.t, 20*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("the supervisor (pid %d) still runs", pid)
		}
		return nil
	})
	r.t.Logf("stopped the supervisor (pid %d)", pid)
}

func (r *run) helperAlertFiresAndResolves() {
	t := r.t
	const helper = "helper-deepstream_cam"
	instance := "edge-a-1/" + helper
	if s := r.alertState("EdgeidHelperNotReady", instance); s != "inactive" {
		t.Fatalf("EdgeidHelperNotReady is %s before the helper is killed", s)
	}
	r.kill("edge-a-1", helper)
	killed := time.Now()
	harness.Eventually(t, 90*time.Second, func() error {
		if s := r.alertState("EdgeidHelperNotReady", instance); s != "firing" {
			return fmt.Errorf("EdgeidHelperNotReady is %s", s)
		}
		return nil
	})
	t.Logf("EdgeidHelperNotReady fired %s after the helper was killed", time.Since(killed).Round(time.Second))
	if out, err := r.edgeid(6*time.Minute, "up", "--step-timeout", "2m"); err != nil {
		t.Fatalf("edgeid up after the kill: %v\n%s", err, out)
	}
	back := time.Now()
	harness.Eventually(t, 90*time.Second, func() error {
		if s := r.alertState("EdgeidHelperNotReady", instance); s != "inactive" {
			return fmt.Errorf("EdgeidHelperNotReady is still %s", s)
		}
		return nil
	})
	t.Logf("EdgeidHelperNotReady resolved %s after the helper was back", time.Since(back).Round(time.Second))
}

func (r *run) checkFailsOnAKilledAgent() {
	t := r.t
	if out, err := r.edgeid(time.Minute, "status", "--check"); err != nil {
		t.Fatalf("status --check before the kill: %v\n%s", err, out)
	}
	r.kill("edge-a-1", "spire-agent")
	start := time.Now()
	out, err := r.edgeid(time.Minute, "status", "--check")
	var exit *exec.ExitError
	if err == nil || !strings.Contains(out, "edge-a-1/spire-agent: not running") {
		t.Fatalf("status --check with the agent killed: %v\n%s", err, out)
	}
	if ok := asExit(err, &exit); !ok || exit.ExitCode() != 1 {
		t.Fatalf("status --check exit %v, want 1", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("status --check took %s, longer than a scrape interval (5 s)", d)
	}
	t.Logf("status --check with the agent killed (exit 1):\n%s", out)
	if out, err := r.edgeid(6*time.Minute, "up", "--step-timeout", "2m"); err != nil {
		t.Fatalf("edgeid up after the agent kill: %v\n%s", err, out)
	}
	harness.Eventually(t, time.Minute, func() error {
		out, err := r.edgeid(time.Minute, "status", "--check")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}
