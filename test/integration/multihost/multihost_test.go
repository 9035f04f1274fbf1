package multihost

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/runner"
	"github.com/edgeid/edgeid/test/harness"
)

// topologyTmpl is the deployment under test: two cloud servers on one
// PostgreSQL (HA) that agents reach by the name spire-cloud, which
// resolves to both; the managed Vault on cloud-1; two edge sites of one
// node each. No address appears in it: hosts are reached by name.
const topologyTmpl = `trust_domain = "multihost.test"
vault {
  mode = "managed"
  # Real hosts need unseal custody; these custodians' identities were
  # thrown away (nothing here restarts Vault).
  unseal_custodians = ["age18lllhyn6p6zvxmda6quup73vwklfz5zsm5rr6f6zmxre8wdn44kqutyqf7", "age1006zpwujvdn6f4aejm3hf8k97chnzqzvlklr3070h0dygt273s4qdhjvwt"]
  unseal_threshold  = 2
}
cloud {
  servers       = 2
  hosts         = ["cloud-1", "cloud-2"]
  address       = "spire-cloud:8081"
  datastore     = "postgres"
  postgres_dsn  = "dbname=spire user=postgres host=cloud-1 port=%d sslmode=disable"
  ca_ttl        = "24h"
  x509_svid_ttl = "10m"
}
kubeedge {
  cluster = "mh-cluster"
}
site "site-a" {
  # Short, so that site-a prepares a new edge CA every 2 minutes: the
  # host-loss check below needs one while a cloud host is gone.
  ca_ttl        = "4m"
  x509_svid_ttl = "30s"
  node "edge-a" {}
  workload "deepstream/cam" {
    kind   = "deepstream"
    config = %[2]q
    # edgeid's stand-in publishes a detection every 2 s through kcat.
    args   = ["-c", "{config}", "-publish-interval", "2s"]
  }
}
site "site-b" {
  ca_ttl        = "2h"
  x509_svid_ttl = "1m"
  node "edge-b" {}
  workload "deepstream/cam" {
    kind   = "deepstream"
    config = %[2]q
    # edgeid's stand-in publishes a detection every 2 s through kcat.
    args   = ["-c", "{config}", "-publish-interval", "2s"]
  }
}
kafka {
  mode = "demo"
  port = 9093
}
observability {
  # Each host's status endpoint on its address, for status --fleet.
  fleet_status = true
}
`

const td = "spiffe://multihost.test"

// deployment is the test's view of the hosts: every host's state lives in
// dir/<host> (its EDGEID_ROOT), all programs in one installed bin dir.
type deployment struct {
	t    testing.TB
	net  *harness.Network
	repo string
	bin  string
	dir  string
	topo string
	// kubeCA is cloudcore's CA, as the servers get it.
	kubeCA string
	// bundle is the trust bundle the operator copies from cloud-1.
	bundle string
}

func (d *deployment) root(host string) string { return filepath.Join(d.dir, host) }

// envFile writes host's env file, in the style of conf/deploy/*.env.
func (d *deployment) envFile(host string) string {
	vars := [][2]string{
		{"EDGEID_TOPOLOGY", d.topo},
		{"EDGEID_HOST", host},
		{"EDGEID_ROOT", d.root(host)},
		{"EDGEID_BIN_DIR", d.bin},
		{"EDGEID_KUBEEDGE_CA", d.kubeCA},
		{"EDGEID_STEP_TIMEOUT", "2m"},
	}
	if strings.HasPrefix(host, "edge-") {
		vars = append(vars,
			[2]string{"EDGEID_TRUST_BUNDLE", d.bundle},
			[2]string{"EDGEID_NODE_CERT", filepath.Join(d.dir, "kubeedge", host, "server.crt")},
			[2]string{"EDGEID_NODE_KEY", filepath.Join(d.dir, "kubeedge", host, "server.key")})
	}
	var b strings.Builder
	for _, v := range vars {
		fmt.Fprintf(&b, "%s=%s\n", v[0], v[1])
	}
	path := filepath.Join(d.dir, host+".env")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		d.t.Fatal(err)
	}
	return path
}

// deploy runs scripts/deploy-<role>.sh [args] <env> inside host's
// namespace, as an operator would on that machine.
func (d *deployment) deploy(role, host string, args ...string) string {
	d.t.Helper()
	out, err := d.tryDeploy(role, host, args...)
	if err != nil {
		d.t.Fatalf("deploy-%s.sh on %s: %v", role, host, err)
	}
	return out
}

// tryDeploy is deploy that returns the script's failure.
func (d *deployment) tryDeploy(role, host string, args ...string) (string, error) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	script := filepath.Join(d.repo, "scripts", "deploy-"+role+".sh")
	cmd := d.net.Command(ctx, host, script, append(args, d.envFile(host))...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.root(host)}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d.t.Logf("deploy-%s.sh %s %s (%s):\n%s", role, strings.Join(args, " "), host, time.Since(start).Round(time.Millisecond), out.String())
	return out.String(), err
}

// spireServer runs the spire-server CLI against host's server.
func (d *deployment) spireServer(host string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append(args, "-socketPath", filepath.Join(d.root(host), render.PrivateSocketDir, "server.sock"))
	out, err := exec.CommandContext(ctx, filepath.Join(d.bin, "spire-server"), args...).CombinedOutput()
	return string(out), err
}

// pid reads a service's PID file on host (0 when absent).
func (d *deployment) pid(host, file string) int {
	data, err := os.ReadFile(filepath.Join(d.root(host), file))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// kill stops a process by its PID file and waits until it is gone.
func (d *deployment) kill(host, file string) {
	d.t.Helper()
	pid := d.pid(host, file)
	if pid == 0 || syscall.Kill(pid, 0) != nil {
		d.t.Fatalf("%s/%s: no running process", host, file)
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	harness.Eventually(d.t, 30*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("%s/%s (pid %d) still runs", host, file, pid)
		}
		return nil
	})
}

func (d *deployment) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(d.dir, "*", "logs", "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		d.t.Logf("---- %s ----\n%s", l, strings.Join(lines, "\n"))
	}
}

// TestDeployAcrossHosts deploys one topology over four hosts (network
// namespaces on a private subnet): cloud-1 (Vault, PostgreSQL, a cloud
// server, the cloud agent, the Kafka broker), cloud-2 (a second cloud
// server on the same PostgreSQL) and two edge hosts, each its own site,
// with scripts/deploy-cloud.sh and deploy-edge.sh. It checks that the edge
// workloads' SVIDs chain to the Vault root, that a Kafka message from each
// edge host reaches the cloud over mTLS, and then that stopping either
// cloud server leaves registration, node attestation and SVID issuance
// working on the other.
func TestDeployAcrossHosts(tt *testing.T) {
	t := harness.EchoFailures(tt)
	harness.RequireCommand(t, "kcat")
	d := &deployment{t: t, repo: harness.RepoRoot(t), dir: harness.ShortTempDir(t)}
	d.bin = harness.InstallBinDir(t)
	d.net = harness.NewNetwork(t, []string{"cloud-1", "cloud-2", "edge-a", "edge-b"},
		map[string][]string{"spire-cloud": {"cloud-1", "cloud-2"}})
	pg := harness.StartPostgresIn(t, d.net, "cloud-1")
	t.Cleanup(func() {
		if t.Failed() {
			d.dumpLogs()
		}
	})

	// The operator's inputs: cloudcore's CA and each edge node's edgecore
	// certificate (played by kubeedgeca), the topology and its pipeline.
	ca, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.kubeCA = filepath.Join(d.dir, "kubeedge", "rootCA.crt")
	if err := os.MkdirAll(filepath.Dir(d.kubeCA), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.kubeCA, ca.CertificatePEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"edge-a", "edge-b"} {
		creds, err := ca.IssueNode(node, kubeedgeca.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := creds.WriteFiles(filepath.Join(d.dir, "kubeedge", node, "server.crt"), filepath.Join(d.dir, "kubeedge", node, "server.key")); err != nil {
			t.Fatal(err)
		}
	}
	pipeline := filepath.Join(d.repo, "conf", "deepstream", "test5_config.txt")
	d.topo = filepath.Join(d.dir, "topology.hcl")
	if err := os.WriteFile(d.topo, []byte(fmt.Sprintf(topologyTmpl, pg.Port, pipeline)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.bundle = filepath.Join(d.dir, "trust-bundle.pem")

	// Cloud first: cloud-1 runs Vault and its bootstrap, a server, the
	// cloud agent and the broker.
	d.deploy("cloud", "cloud-1")
	// The second cloud host needs the Vault login and Vault's certificate
	// from the first: without them its deploy fails, naming them, and
	// starts nothing.
	if out, err := d.tryDeploy("cloud", "cloud-2"); err == nil || !strings.Contains(out, "needs files made on host cloud-1") || !strings.Contains(out, "secret_id") {
		t.Fatalf("deploy-cloud.sh on cloud-2 without the Vault login: err %v, want a failure naming the files", err)
	}
	if pid := d.pid("cloud-2", "pids/spire-server.pid"); pid != 0 {
		t.Fatalf("cloud-2's server was started without its Vault login (pid %d)", pid)
	}
	// The operator copies them, and the trust bundle to the edge hosts.
	// cloud-2 has a secret_id of its own (wrapped; it unwraps it once).
	for _, rel := range []string{"vault/tls/vault.crt", "vault/bootstrap/approle/role_id", "vault/bootstrap/approle/secret_id.cloud-2"} {
		copyFile(t, filepath.Join(d.root("cloud-1"), rel), filepath.Join(d.root("cloud-2"), rel))
	}
	copyFile(t, filepath.Join(d.root("cloud-1"), "export", "trust-bundle.pem"), d.bundle)
	d.deploy("cloud", "cloud-2")
	// cloud-2's server unwrapped its secret_id and wrote it back over the
	// spent wrapping token (in the directory the operator made), so that
	// it can start again.
	harness.Eventually(t, 30*time.Second, func() error {
		sid, err := os.ReadFile(filepath.Join(d.root("cloud-2"), "vault/bootstrap/approle/secret_id.cloud-2"))
		if err != nil {
			return err
		}
		if s := strings.TrimSpace(string(sid)); strings.HasPrefix(s, "hvs.") || strings.HasPrefix(s, "s.") {
			return fmt.Errorf("cloud-2's secret_id file still holds the (spent) wrapping token")
		}
		return nil
	})
	d.deploy("edge", "edge-a")
	d.deploy("edge", "edge-b")

	vaultRoot := d.vaultRoot()
	t.Logf("Vault root: %s", vaultRoot.Subject)
	sites := map[string]string{"edge-a": "site-a", "edge-b": "site-b"}
	for host, site := range sites {
		d.requireWorkloadSVID(host, site, vaultRoot, "")
	}
	d.requireMessages(sites, time.Time{})
	d.checkFleetStatus(sites)

	if out := d.deploy("edge", "edge-a", "--status"); !strings.Contains(out, "site-a") || !strings.Contains(out, "deepstream/cam") {
		t.Errorf("deploy-edge.sh --status does not show edge-a's site and workload")
	}

	// Idempotent: deploying a host again changes nothing that runs.
	before := d.pid("edge-a", "pids/spire-server.pid")
	d.deploy("edge", "edge-a")
	if after := d.pid("edge-a", "pids/spire-server.pid"); after != before {
		t.Errorf("a second deploy-edge.sh restarted the edge server (pid %d → %d)", before, after)
	}

	// HA: stop cloud-1's server (and its supervisor, which would restart
	// it); cloud-2 carries on alone. Then bring cloud-1 back, stop
	// cloud-2, and check again the other way round.
	d.kill("cloud-1", "supervisor.pid")
	d.kill("cloud-1", "pids/spire-server.pid")
	d.checkOneServer("cloud-2", "edge-a", vaultRoot)

	d.deploy("cloud", "cloud-1")
	d.deploy("cloud", "cloud-2", "--stop")
	d.checkOneServer("cloud-1", "edge-b", vaultRoot)

	d.loseActiveCloudHost(vaultRoot)
}

// loseActiveCloudHost takes the whole cloud host that serves site-a off
// the network (not one process: the host, as a power or link loss does)
// and checks that site-a's next edge CA is signed through the surviving
// cloud server. The active one is made to be cloud-2 first: cloud-1 also
// holds Vault and PostgreSQL, the single points of this test topology
// (one Vault node, no PostgreSQL standby).
func (d *deployment) loseActiveCloudHost(vaultRoot *x509.Certificate) {
	t := d.t
	t.Helper()
	t.Log("---- host loss: cloud-2 serves site-a, then leaves the network ----")
	d.deploy("cloud", "cloud-2")
	// Move site-a's connections to cloud-2: with cloud-1's server gone,
	// edge-a's edge server and upstream agent reconnect to the other
	// address of spire-cloud, and stay there once cloud-1 is back.
	d.kill("cloud-1", "supervisor.pid")
	d.kill("cloud-1", "pids/spire-server.pid")
	harness.Eventually(t, 3*time.Minute, func() error { return d.cloudPeersAre("edge-a", "cloud-2", 0) })
	d.deploy("cloud", "cloud-1")
	// What must stay on cloud-2 is the edge server's upstream connection
	// (it mints the edge CAs); the upstream agent may open a new one to
	// either address meanwhile, which does not matter here.
	edgeServer := d.pid("edge-a", "pids/spire-server.pid")
	if err := d.cloudPeersAre("edge-a", "cloud-2", edgeServer); err != nil {
		t.Fatalf("site-a's edge server left cloud-2 when cloud-1 came back: %v", err)
	}

	// A lost host answers nothing, so a request already on its way
	// waits for TCP to give up: 15 retransmissions (~15 minutes) by
	// default, past an edge CA's life here. Edge hosts that must fail
	// over fast set net.ipv4.tcp_retries2 (README, "HA cloud"); edge-a
	// does, in its own namespace only. Without it this check fails: the
	// edge server waits on the lost host until its CA expires.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if out, err := d.net.Command(ctx, "edge-a", "sysctl", "-w", "net.ipv4.tcp_retries2=5").CombinedOutput(); err != nil {
		t.Fatalf("sysctl in edge-a: %v: %s", err, out)
	}
	cancel()
	if err := d.cloudPeersAre("edge-a", "cloud-2", edgeServer); err != nil {
		t.Fatalf("site-a's edge server left cloud-2 before the cut: %v", err)
	}
	cut := time.Now()
	d.net.Cut(t, "cloud-2")
	defer d.net.Mend(t, "cloud-2")
	if conn, err := d.net.Dial("edge-a", d.net.Hosts["cloud-2"].IP+":8081"); err == nil {
		conn.Close()
		t.Fatal("cloud-2 still answers from edge-a after the cut")
	}
	// site-a prepares its next CA every 2 minutes (ca_ttl 4m); allow one
	// full period, the retries of one that meets the dead host first, and
	// gRPC's reconnect.
	serverLog := filepath.Join(d.root("edge-a"), "logs", "spire-server.log")
	harness.Eventually(t, 4*time.Minute, func() error {
		if p := harness.SPIRELogLinesSince(t, serverLog, cut, `msg="X509 CA prepared"`); len(p) == 0 {
			return fmt.Errorf("site-a has prepared no edge CA since cloud-2 was cut at %s", cut.Format(time.RFC3339))
		}
		return nil
	})
	for _, l := range harness.SPIRELogLinesSince(t, serverLog, cut, `msg="Unable to rotate X509 CA"`) {
		t.Logf("edge-a, an attempt that met the lost host: %s", l)
	}
	t.Logf("site-a prepared an edge CA through cloud-1 with cloud-2 gone: %s", harness.SPIRELogLinesSince(t, serverLog, cut, `msg="X509 CA prepared"`)[0])
	if conn, err := d.net.Dial("edge-a", d.net.Hosts["cloud-2"].IP+":8081"); err == nil {
		conn.Close()
		t.Fatal("cloud-2 came back during the check: the rotation may have used it")
	}
	d.requireWorkloadSVID("edge-a", "site-a", vaultRoot, "")
}

// cloudPeersAre checks that every connection from host to a cloud server
// (port 8081) goes to want, and that there is at least one; with pid > 0,
// only that process's connections count.
func (d *deployment) cloudPeersAre(host, want string, pid int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := d.net.Command(ctx, host, "ss", "-tnpH", "state", "established", "( dport = :8081 )").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ss in %s: %v: %s", host, err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && (pid == 0 || strings.Contains(l, fmt.Sprintf("pid=%d,", pid))) {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return fmt.Errorf("%s has no connection to a cloud server (process %d; 0 is any):\n%s", host, pid, out)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[3], d.net.Hosts[want].IP+":") {
			return fmt.Errorf("%s has a cloud connection that is not to %s: %q", host, want, l)
		}
	}
	return nil
}

// checkOneServer checks, with only survivor's cloud server running, that
// a new entry can be registered on it, that the cloud agent gets an SVID
// for it, and that an edge node whose agent lost its identity attests
// again (kubeedge) and its site goes on issuing.
func (d *deployment) checkOneServer(survivor, reattest string, vaultRoot *x509.Certificate) {
	t := d.t
	t.Helper()
	t.Logf("---- only %s's cloud server runs ----", survivor)

	// Registration and issuance.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	id := td + "/cloud/ha-check-" + survivor
	out, err := d.spireServer(survivor, "entry", "create",
		"-parentID", td+"/cloud/agent/cloud-1", "-spiffeID", id,
		"-selector", "unix:uid:0", "-selector", "unix:path:"+exe, "-x509SVIDTTL", "300")
	if err != nil {
		t.Fatalf("register on %s: %v\n%s", survivor, err, out)
	}
	svid, _ := harness.FetchX509SVIDFor(t, filepath.Join(d.root("cloud-1"), render.PublicSocketDir, "agent.sock"), id)
	if _, err := harness.VerifySVIDChain(svid, []*x509.Certificate{vaultRoot}); err != nil {
		t.Fatalf("SVID %s issued with only %s up does not chain to the Vault root: %v", id, survivor, err)
	}
	t.Logf("registered %s on %s and received its SVID through cloud-1's agent", id, survivor)

	// Attestation: the edge node's cloud agent loses its identity and
	// attests again; its edge server restarts on the new SVID.
	site := map[string]string{"edge-a": "site-a", "edge-b": "site-b"}[reattest]
	old := d.requireWorkloadSVID(reattest, site, vaultRoot, "")
	since := time.Now()
	d.deploy("edge", reattest, "--stop")
	data := filepath.Join(d.root(reattest), "spire", "upstream-agent-data")
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	d.deploy("edge", reattest)
	agentSVID, err := runner.AgentSVID(data)
	if err != nil {
		t.Fatalf("%s's cloud agent: %v", reattest, err)
	}
	// SPIRE backdates NotBefore by 10 s.
	if agentSVID.NotBefore.Before(since.Add(-15 * time.Second)) {
		t.Fatalf("%s's cloud agent kept an old SVID (from %s)", reattest, agentSVID.NotBefore)
	}
	want := td + "/spire/agent/kubeedge/mh-cluster/" + reattest
	if len(agentSVID.URIs) != 1 || agentSVID.URIs[0].String() != want {
		t.Fatalf("%s's cloud agent attested as %v, want %s", reattest, agentSVID.URIs, want)
	}
	out, err = d.spireServer(survivor, "agent", "show", "-spiffeID", want)
	if err != nil {
		t.Fatalf("agent show on %s: %v\n%s", survivor, err, out)
	}
	t.Logf("%s attested again with only %s up:\n%s", reattest, survivor, out)
	d.requireWorkloadSVID(reattest, site, vaultRoot, old)
	d.requireMessages(map[string]string{reattest: site}, since)
}

// vaultRoot fetches the PKI root from the managed Vault on cloud-1, from
// inside edge-a's namespace, over TLS verified with Vault's certificate.
func (d *deployment) vaultRoot() *x509.Certificate {
	t := d.t
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(harness.ReadCertsPEM(t, filepath.Join(d.root("cloud-1"), "vault", "tls", "vault.crt"))[0])
	conn, err := d.net.Dial("edge-a", d.net.Hosts["cloud-1"].IP+":8200")
	if err != nil {
		t.Fatalf("dial Vault from edge-a: %v", err)
	}
	tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "cloud-1", MinVersion: tls.VersionTLS12})
	defer tc.Close()
	if _, err := fmt.Fprintf(tc, "GET /v1/pki/ca/pem HTTP/1.1\r\nHost: cloud-1:8200\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatalf("Vault over TLS: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatalf("Vault over TLS: %v", err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	certs, err := pemutil.ParseCertificates(body.Bytes())
	if err != nil {
		t.Fatalf("Vault root (HTTP %d): %v", resp.StatusCode, err)
	}
	return certs[0]
}

// requireWorkloadSVID waits until the DeepStream workload on host has an
// SVID for its site that chains to the Vault root and whose serial is not
// notSerial, and returns its serial.
func (d *deployment) requireWorkloadSVID(host, site string, vaultRoot *x509.Certificate, notSerial string) string {
	t := d.t
	t.Helper()
	var serial string
	path := filepath.Join(d.root(host), "workloads", "deepstream_cam", "svid", "svid.pem")
	want := td + "/edge/" + site + "/deepstream/cam"
	harness.Eventually(t, 90*time.Second, func() error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		chain, err := pemutil.ParseCertificates(data)
		if err != nil {
			return err
		}
		if len(chain[0].URIs) != 1 || chain[0].URIs[0].String() != want {
			return fmt.Errorf("%s: SVID for %v, want %s", path, chain[0].URIs, want)
		}
		if chain[0].SerialNumber.String() == notSerial {
			return fmt.Errorf("%s: still the SVID issued at %s", path, chain[0].NotBefore)
		}
		pool, inter := x509.NewCertPool(), x509.NewCertPool()
		pool.AddCert(vaultRoot)
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		chains, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return fmt.Errorf("%s: does not chain to the Vault root: %w", want, err)
		}
		t.Logf("%s on %s: %d-certificate chain to the Vault root, valid until %s", want, host, len(chains[0]), chain[0].NotAfter.Format(time.RFC3339))
		serial = chain[0].SerialNumber.String()
		return nil
	})
	return serial
}

// requireMessages waits until the broker on cloud-1 has consumed a message
// produced after since by the workload of each host's site, authenticated
// by its SVID.
func (d *deployment) requireMessages(sites map[string]string, since time.Time) {
	t := d.t
	t.Helper()
	log := filepath.Join(d.root("cloud-1"), "kafka", "messages.log")
	harness.Eventually(t, 2*time.Minute, func() error {
		data, err := os.ReadFile(log)
		if err != nil {
			return err
		}
		got := map[string]int{}
		for _, line := range strings.Split(string(data), "\n") {
			var m struct {
				Producer string    `json:"producer"`
				Time     time.Time `json:"time"`
			}
			if json.Unmarshal([]byte(line), &m) == nil && !m.Time.Before(since) {
				got[m.Producer]++
			}
		}
		for host, site := range sites {
			id := td + "/edge/" + site + "/deepstream/cam"
			if got[id] == 0 {
				return fmt.Errorf("no message from %s (on %s) in %s yet", id, host, log)
			}
			t.Logf("%d message(s) from %s on %s consumed on cloud-1 over mTLS", got[id], id, host)
		}
		return nil
	})
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}
