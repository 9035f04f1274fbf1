package orchestrator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/test/harness"
)

// threeSites is a topology with short TTLs, so that edge CAs and SVIDs
// rotate several times within the test: edge CA 90 s (a new one every
// ~75 s), SVIDs 15 s, cloud CA 10 min. Every nesting rule holds.
const threeSites = `trust_domain = "example.org"
cloud {
  ca_ttl        = "10m"
  x509_svid_ttl = "1m"
}
kubeedge {
  cluster = "test-cluster"
}
%s
`

const siteTmpl = `site "site-%[1]s" {
  ca_ttl        = "90s"
  x509_svid_ttl = "15s"
  node "edge-%[1]s-1" {}
  workload "deepstream/cam" {
    kind   = "deepstream"
    config = %[2]q
  }
}
`

// run is one `edgeid` invocation's result.
func edgeid(t *testing.T, bin string, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "edgeid"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "EDGEID_CACHE=" + os.Getenv("EDGEID_CACHE")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

type status struct {
	Vault *struct {
		Addr string `json:"addr"`
	} `json:"vault"`
	Cloud []struct {
		Healthy bool `json:"healthy"`
	} `json:"cloud"`
	Sites []struct {
		Name   string `json:"name"`
		Server struct {
			Healthy bool `json:"healthy"`
		} `json:"server"`
	} `json:"sites"`
	KafkaGateways []struct {
		Decisions      map[string]float64 `json:"decisions"`
		DenialsByActor map[string]float64 `json:"denials_by_actor"`
	} `json:"kafka_gateways"`
}

// TestThreeEdgeSites brings up one cloud and three edge sites, then checks
// for at least three edge-CA rotations that every workload's SVID chains
// through its edge CA and the cloud CA to the Vault root, that an SVID from
// one site verifies against another site's bundle, and that no Kafka
// message a pipeline sent is lost across SVID rotations. Every pipeline
// publishes through its helper's edge gateway and the cloud gateway, runs
// as one process across every rotation, and a publish with site A's
// identity to site B's topic is refused and reported by edgeid status.
func TestThreeEdgeSites(t *testing.T) {
	harness.SpireServerBin(t)
	harness.VaultBin(t)
	harness.RequireCommand(t, "kcat")
	bin := harness.BuildEdgeidBinDir(t)
	dir := t.TempDir()
	runDir := harness.ShortTempDir(t)
	config, err := filepath.Abs(filepath.Join(harness.RepoRoot(t), "conf", "deepstream", "test5_config.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// Each site's pipeline publishes to a topic of its own, so that the
	// gateway's policy can tell a wrong-site publish from a right one.
	src, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	var sites strings.Builder
	for _, s := range []string{"a", "b", "c"} {
		siteConfig := filepath.Join(dir, "site-"+s, "test5_config.txt")
		text := strings.Replace(string(src), "\ntopic=detections\n", "\ntopic="+siteTopic(s)+"\n", 1)
		if text == string(src) {
			t.Fatalf("%s has no topic=detections line to give each site its own topic", config)
		}
		if err := os.MkdirAll(filepath.Dir(siteConfig), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(siteConfig, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sites, siteTmpl, s, siteConfig)
	}
	topo := filepath.Join(dir, "topology.hcl")
	if err := os.WriteFile(topo, []byte(fmt.Sprintf(threeSites, sites.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"-f", topo, "--run-dir", runDir, "--bin-dir", bin}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, runDir)
		}
		out, err := edgeid(t, bin, 2*time.Minute, append([]string{"down"}, common...)...)
		if err != nil {
			t.Errorf("edgeid down: %v\n%s", err, out)
		}
	})

	start := time.Now()
	out, err := edgeid(t, bin, 6*time.Minute, append([]string{"up", "--step-timeout", "2m"}, common...)...)
	t.Logf("edgeid up (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("edgeid up: %v", err)
	}

	out, err = edgeid(t, bin, time.Minute, append([]string{"status", "-o", "json"}, common...)...)
	if err != nil {
		t.Fatalf("edgeid status: %v\n%s", err, out)
	}
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if st.Vault == nil || len(st.Cloud) != 1 || !st.Cloud[0].Healthy || len(st.Sites) != 3 {
		t.Fatalf("unexpected status: %s", out)
	}
	vaultRoot := fetchVaultRoot(t, st.Vault.Addr)
	kcatWithRenderedProperties(t, runDir)
	otherAccountNotCarried(t, runDir)
	wrongSitePublishDenied(t, bin, common, runDir)

	type siteFiles struct{ name, svid, bundle, sent string }
	var files []siteFiles
	for _, s := range []string{"a", "b", "c"} {
		wd := filepath.Join(runDir, "edge-"+s+"-1", "workloads", "deepstream_cam")
		files = append(files, siteFiles{"site-" + s, filepath.Join(wd, "svid", "svid.pem"), filepath.Join(wd, "svid", "bundle.pem"), filepath.Join(wd, "sent.log")})
	}

	edgeCAs := map[string]map[string]bool{}
	leaves := map[string]map[string]bool{}
	deadline := time.Now().Add(6 * time.Minute)
	for {
		var svids [][]*x509.Certificate
		var bundles [][]*x509.Certificate
		for _, f := range files {
			chain := harness.ReadCertsPEM(t, f.svid)
			bundle := harness.ReadCertsPEM(t, f.bundle)
			svids, bundles = append(svids, chain), append(bundles, bundle)
			// leaf, edge CA, cloud CA, Vault intermediate; root in bundle.
			if len(chain) != 4 {
				t.Fatalf("%s: SVID chain has %d certificates, want leaf + edge CA + cloud CA + pki_int", f.name, len(chain))
			}
			verified := verify(t, chain, bundle, f.name)
			if !verified[len(verified)-1].Equal(vaultRoot) {
				t.Fatalf("%s: chain ends at %s, not at the Vault root", f.name, verified[len(verified)-1].Subject)
			}
			if !chain[3].Equal(verified[3]) || chain[3].Subject.CommonName != "edgeid intermediate CA" {
				t.Fatalf("%s: the chain does not pass through Vault's pki_int intermediate (got %s)", f.name, chain[3].Subject)
			}
			if edgeCAs[f.name] == nil {
				edgeCAs[f.name], leaves[f.name] = map[string]bool{}, map[string]bool{}
			}
			edgeCAs[f.name][chain[1].SerialNumber.String()] = true
			leaves[f.name][chain[0].SerialNumber.String()] = true
		}
		// An SVID from one site verifies against the next site's bundle.
		for i := range files {
			j := (i + 1) % len(files)
			verify(t, svids[i], bundles[j], files[i].name+" against "+files[j].name+"'s bundle")
		}
		done := true
		for _, f := range files {
			if len(edgeCAs[f.name]) < 4 || len(leaves[f.name]) < 4 {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not enough rotations within the time limit: edge CAs seen %v, SVIDs seen %v", count(edgeCAs), count(leaves))
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("edge CAs seen per site: %v; SVIDs seen per site: %v", count(edgeCAs), count(leaves))

	// Zero lost messages. Each pipeline's ledger holds every attempt,
	// written before the send, and its outcome: a failed send fails the
	// test, sequence numbers must run without gap or repeat across the
	// pipeline's single run (no restart: it publishes through its helper's
	// edge gateway), and every acknowledged message must reach the
	// cloud consumer.
	messages := filepath.Join(runDir, "cloud", "kafka", "messages.log")
	var sent []string
	for _, f := range files {
		sent = append(sent, accountLedger(t, f.name, readLines(t, f.sent))...)
	}
	harness.Eventually(t, time.Minute, func() error {
		consumed := map[string]bool{}
		for _, line := range readLines(t, messages) {
			var m struct {
				Value string `json:"value"`
			}
			if json.Unmarshal([]byte(line), &m) == nil {
				consumed[strings.TrimSpace(m.Value)] = true
			}
		}
		var missing []string
		for _, s := range sent {
			if !consumed[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d acknowledged messages not consumed, first %s", len(missing), len(sent), missing[0])
		}
		return nil
	})
	t.Logf("all %d messages sent by 3 sites across the rotations were consumed in the cloud", len(sent))
}

// siteTopic is the topic site s's pipeline publishes to.
func siteTopic(s string) string { return "site-" + s + ".detections" }

// kcatWithRenderedProperties follows the helper's documented client path
// as a user would: `kcat -F kafka.properties`, the librdkafka file the
// helper renders, with nothing added on the command line. With the demo's
// Kafka gateway the file points at the helper's edge gateway on loopback
// in plaintext (no key, nothing for kcat to verify or drop); the edge
// gateway carries the SVID to the cloud gateway, which lets site A's
// identity write site A's topic, and the cloud consumes the message.
func kcatWithRenderedProperties(t *testing.T, runDir string) {
	t.Helper()
	props := renderedProperties(t, runDir, "a")
	text, err := os.ReadFile(props)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "security.protocol=plaintext\n") || !strings.Contains(string(text), "bootstrap.servers=127.0.0.1:") ||
		strings.Contains(string(text), "ssl.") {
		t.Fatalf("the rendered kafka.properties does not point at the local gateway in plaintext:\n%s", text)
	}
	dump, err := kcatAsWorkload(t, props, "-F", props, "-X", "dump").CombinedOutput()
	if err != nil || !strings.Contains(string(dump), "security.protocol = plaintext") {
		t.Fatalf("kcat -F %s -X dump: %v\n%s", props, err, dump)
	}
	msg := fmt.Sprintf(`{"kcat-F":%d}`, time.Now().UnixNano())
	t.Logf("kcat -F %s -P -t %s: attempt %s", props, siteTopic("a"), msg)
	cmd := kcatAsWorkload(t, props, "-F", props, "-P", "-t", siteTopic("a"), "-X", "message.timeout.ms=20000")
	cmd.Stdin = strings.NewReader(msg + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -F %s -P (as the helper's README documents it): %v\n%s", props, err, out)
	}
	messages := filepath.Join(runDir, "cloud", "kafka", "messages.log")
	harness.Eventually(t, time.Minute, func() error {
		for _, line := range readLines(t, messages) {
			if strings.Contains(line, strings.ReplaceAll(msg, `"`, `\"`)) || strings.Contains(line, msg) {
				return nil
			}
		}
		return fmt.Errorf("the message kcat -F produced is not in %s", messages)
	})
	t.Logf("kcat -F with the rendered kafka.properties went through the edge and cloud gateways and its message reached the cloud")
}

// kcatAsWorkload runs kcat as the account that owns props: the workload's
// own, the only local account its edge gateway carries (local_users).
func kcatAsWorkload(t *testing.T, props string, args ...string) *exec.Cmd {
	t.Helper()
	fi, err := os.Stat(props)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	cmd := exec.Command("kcat", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: []uint32{}}}
	return cmd
}

// otherAccountNotCarried: another account on site A's edge node (nobody,
// and root, the test's own) points kcat at the workload's edge gateway on
// loopback. The gateway would speak upstream with the workload's SVID, so
// it must close the connection: kcat fails and nothing reaches the broker.
func otherAccountNotCarried(t *testing.T, runDir string) {
	t.Helper()
	props := renderedProperties(t, runDir, "a")
	text, err := os.ReadFile(props)
	if err != nil {
		t.Fatal(err)
	}
	var bootstrap string
	for _, line := range strings.Split(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, "bootstrap.servers="); ok {
			bootstrap = v
		}
	}
	for _, uid := range []uint32{65534, 0} {
		msg := fmt.Sprintf(`{"other-account":%d}`, uid)
		t.Logf("kcat as uid %d -b %s -P -t %s: attempt %s", uid, bootstrap, siteTopic("a"), msg)
		cmd := exec.Command("kcat", "-b", bootstrap, "-X", "security.protocol=plaintext", "-P", "-t", siteTopic("a"),
			"-X", "message.timeout.ms=8000")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
		cmd.Stdin = strings.NewReader(msg + "\n")
		out, err := cmd.CombinedOutput()
		t.Logf("kcat as uid %d: %v\n%s", uid, err, out)
		if err == nil {
			t.Fatalf("uid %d's kcat delivered through the workload's edge gateway", uid)
		}
		logPath := filepath.Join(runDir, "edge-a-1", "logs", "helper-deepstream_cam.log")
		harness.Eventually(t, 10*time.Second, func() error {
			data, _ := os.ReadFile(logPath)
			if !strings.Contains(string(data), fmt.Sprintf("belongs to uid %d,", uid)) {
				return fmt.Errorf("%s does not name uid %d's refused connection", logPath, uid)
			}
			return nil
		})
	}
	requireNotConsumed(t, runDir, "other-account")
	t.Logf("other local accounts were refused by site A's edge gateway (its log names their uids) and nothing of theirs reached the broker")
}

// requireNotConsumed fails if a message holding marker reached the broker.
func requireNotConsumed(t *testing.T, runDir, marker string) {
	t.Helper()
	for _, line := range readLines(t, filepath.Join(runDir, "cloud", "kafka", "messages.log")) {
		if strings.Contains(line, marker) {
			t.Fatalf("a refused message (%s) reached the broker: %s", marker, line)
		}
	}
}

// renderedProperties waits for site s's rendered kafka.properties.
func renderedProperties(t *testing.T, runDir, s string) string {
	t.Helper()
	props := filepath.Join(runDir, "edge-"+s+"-1", "workloads", "deepstream_cam", "svid", "kafka.properties")
	harness.Eventually(t, time.Minute, func() error {
		_, err := os.Stat(props)
		return err
	})
	return props
}

// wrongSitePublishDenied publishes with site A's identity (through site
// A's edge gateway) to site B's topic: kcat must fail with the topic
// authorization error, and `edgeid status` must report the denial for
// site A's SPIFFE ID, which had none before.
func wrongSitePublishDenied(t *testing.T, bin string, common []string, runDir string) {
	t.Helper()
	actor := "spiffe://example.org/edge/site-a/deepstream/cam"
	before := gatewayDenials(t, bin, common)[actor]
	if before != 0 {
		t.Fatalf("site A was denied %v times before any wrong-site publish", before)
	}
	props := renderedProperties(t, runDir, "a")
	t.Logf("kcat -F %s -P -t %s: wrong-site attempt", props, siteTopic("b"))
	cmd := kcatAsWorkload(t, props, "-F", props, "-P", "-t", siteTopic("b"), "-X", "message.timeout.ms=10000")
	cmd.Stdin = strings.NewReader(`{"wrong-site":true}` + "\n")
	out, err := cmd.CombinedOutput()
	t.Logf("kcat: %v\n%s", err, out)
	if !strings.Contains(string(out), "Topic authorization failed") {
		t.Fatalf("site A's publish to %s was not refused with the topic authorization error (err %v):\n%s", siteTopic("b"), err, out)
	}
	harness.Eventually(t, 30*time.Second, func() error {
		if n := gatewayDenials(t, bin, common)[actor]; n <= before {
			return fmt.Errorf("edgeid status shows %v denials for %s", n, actor)
		}
		return nil
	})
	requireNotConsumed(t, runDir, "wrong-site")
	t.Logf("site A's publish to site B's topic was refused (TOPIC_AUTHORIZATION_FAILED) and edgeid status reports the denial")
}

// gatewayDenials reads the cloud gateway's denials by actor from
// `edgeid status -o json`.
func gatewayDenials(t *testing.T, bin string, common []string) map[string]float64 {
	t.Helper()
	out, err := edgeid(t, bin, time.Minute, append([]string{"status", "-o", "json"}, common...)...)
	if err != nil {
		t.Fatalf("edgeid status: %v\n%s", err, out)
	}
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if len(st.KafkaGateways) != 1 || st.KafkaGateways[0].Decisions["allow"] == 0 {
		t.Fatalf("edgeid status shows no gateway decisions: %s", out)
	}
	return st.KafkaGateways[0].DenialsByActor
}

// accountLedger checks one pipeline's ledger (see the stand-in's
// -sent-log) and returns the messages the broker acknowledged. Only the
// last attempt may still be in flight.
func accountLedger(t *testing.T, site string, lines []string) []string {
	t.Helper()
	type entry struct {
		Seq   int    `json:"seq"`
		Event string `json:"event"`
		Msg   string `json:"msg"`
		Error string `json:"error"`
	}
	attempts := map[int]string{}
	outcomes := map[int]entry{}
	maxSeq := 0
	pids := map[float64]bool{}
	retries := 0
	for _, line := range lines {
		var e entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%s ledger: %q: %v", site, line, err)
		}
		switch e.Event {
		case "attempt":
			if _, dup := attempts[e.Seq]; dup {
				t.Errorf("%s: sequence %d attempted twice (the sequence restarted)", site, e.Seq)
			}
			attempts[e.Seq] = e.Msg
			var m map[string]any
			if json.Unmarshal([]byte(e.Msg), &m) == nil {
				pid, _ := m["pid"].(float64)
				pids[pid] = true
			}
		case "retry":
			retries++
			t.Logf("%s: send %d tried again after: %s", site, e.Seq, e.Error)
			continue
		case "acked", "failed":
			if _, dup := outcomes[e.Seq]; dup {
				t.Errorf("%s: sequence %d has two outcomes", site, e.Seq)
			}
			outcomes[e.Seq] = e
		default:
			t.Fatalf("%s ledger: unknown event in %q", site, line)
		}
		maxSeq = max(maxSeq, e.Seq)
	}
	if len(attempts) == 0 {
		t.Fatalf("%s sent no message", site)
	}
	var acked []string
	failed := 0
	for seq := 1; seq <= maxSeq; seq++ {
		msg, ok := attempts[seq]
		if !ok {
			t.Errorf("%s: sequence %d was never attempted (a gap)", site, seq)
			continue
		}
		o, ok := outcomes[seq]
		switch {
		case !ok && seq == maxSeq:
			// In flight as the ledger was read.
		case !ok:
			t.Errorf("%s: attempt %d has no outcome: the send was cut off", site, seq)
		case o.Event == "failed":
			failed++
			t.Errorf("%s: send %d failed: %s", site, seq, o.Error)
		default:
			acked = append(acked, strings.TrimSpace(msg))
		}
	}
	t.Logf("%s: %d attempts by %d pipeline processes, %d acknowledged, %d failed, %d tried again", site, len(attempts), len(pids), len(acked), failed, retries)
	if len(pids) != 1 {
		t.Errorf("%s: messages came from %d pipeline processes; through its helper's Kafka gateway the pipeline must run across every rotation without a restart", site, len(pids))
	}
	return acked
}

func count(m map[string]map[string]bool) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

func verify(t *testing.T, chain, roots []*x509.Certificate, what string) []*x509.Certificate {
	t.Helper()
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		t.Fatalf("%s: SVID does not verify: %v", what, err)
	}
	return chains[0]
}

func fetchVaultRoot(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	resp, err := http.Get(addr + "/v1/pki/ca/pem")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		t.Fatalf("Vault root from %s: %v", addr, err)
	}
	return certs[0]
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// dumpLogs prints the tail of every log of the run.
func dumpLogs(t *testing.T, runDir string) {
	logs, _ := filepath.Glob(filepath.Join(runDir, "*", "logs", "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		t.Logf("---- %s ----\n%s", l, strings.Join(lines, "\n"))
	}
}

// TestBadTopologyStartsNothing checks that `edgeid up` refuses a bad
// topology with file:line and starts no process.
func TestBadTopologyStartsNothing(t *testing.T) {
	bin := harness.BuildEdgeidBinDir(t)
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	topo := filepath.Join(dir, "bad.hcl")
	bad := "trust_domain = \"example.org\"\ncloud {\n  ca_ttl = \"1h\"\n}\nsite \"a\" {\n  ca_ttl = \"2h\"\n  node \"n1\" {}\n}\n"
	if err := os.WriteFile(topo, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := edgeid(t, bin, time.Minute, "up", "-f", topo, "--run-dir", runDir, "--bin-dir", bin)
	if err == nil {
		t.Fatalf("edgeid up accepted a topology whose site CA outlives the cloud CA:\n%s", out)
	}
	if !strings.Contains(out, "bad.hcl:6,3") || !strings.Contains(out, "TTLs break nesting") {
		t.Fatalf("error does not name the file and line:\n%s", out)
	}
	if _, err := os.Stat(runDir); !os.IsNotExist(err) {
		t.Fatalf("a refused topology left a run directory behind (%v)", err)
	}
}
