package recordspire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/batch"
	"github.com/edgeid/edgeid/internal/svidsource"
	"github.com/edgeid/edgeid/internal/transitpolicy"
	"github.com/edgeid/edgeid/test/harness"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	td         = "example.org"
	topic      = "site-a.detections"
	ring       = "site-a"
	partitions = 3
	idKafka    = "spiffe://example.org/cloud/kafka"
	idProducer = "spiffe://example.org/edge/site-a/deepstream/cam-pipeline"
	idConsumer = "spiffe://example.org/cloud/analytics"
	// Unused accounts (no passwd entry) for the two workloads; the attack
	// suite uses 641xx.
	producerUID = 61901
	consumerUID = 61902
	// workloadSVIDTTL is short so that the producer's SVID rotates (at
	// half-life) several times while the test runs.
	workloadSVIDTTL = 30 * time.Second
	// tokenMaxTTL caps the Vault tokens of cert auth, so that the
	// gateways log in again (with their current SVID) every 10 s.
	tokenMaxTTL = "15s"
)

// dnsNames are the entries' DNS names: SPIRE copies the first into the
// subject CN, which Vault's cert auth needs.
var dnsNames = map[string]string{
	idProducer: "cam-pipeline.deepstream.site-a.example.org",
	idConsumer: "analytics.cloud.example.org",
}

// rig is a real SPIRE server and agent, a real non-dev Vault, and a
// 3-broker mTLS kfake whose SVID comes from the same SPIRE.
type rig struct {
	t         testing.TB
	kcatBin   string
	setpriv   string
	helperBin string
	agent     *harness.SpireAgent
	bundlePEM []byte
	vault     *harness.Vault
	unsealKey string
	auditLog  string
	kafka     *svidsource.Source
	cluster   *kfake.Cluster

	mu      sync.Mutex
	arrived int // records of topic the brokers received
}

func newRig(t testing.TB) *rig {
	if os.Geteuid() != 0 {
		t.Fatal("recordspire needs root: it runs the helpers and kcat under other uids")
	}
	r := &rig{t: t, kcatBin: harness.RequireCommand(t, "kcat"), setpriv: harness.RequireCommand(t, "setpriv")}
	r.buildHelper()
	r.startSPIRE()
	r.startVault()
	r.startKafka()
	return r
}

// buildHelper builds edgeid-helper where the workloads' uids may run it.
func (r *rig) buildHelper() {
	r.helperBin = filepath.Join(harness.ShortTempDir(r.t), "edgeid-helper")
	build := exec.Command("go", "build", "-o", r.helperBin, "./helper/cmd/edgeid-helper")
	build.Dir = harness.RepoRoot(r.t)
	if out, err := build.CombinedOutput(); err != nil {
		r.t.Fatalf("build edgeid-helper: %v\n%s", err, out)
	}
}

// startSPIRE runs a server and agent (unix attestor); the producer and
// consumer uids get 30 s SVIDs with a DNS name, the test's own uid the
// brokers' SVID.
func (r *rig) startSPIRE() {
	t := r.t
	server := harness.StartSpireServer(t, harness.ServerConfig{TrustDomain: td, X509SVIDTTL: workloadSVIDTTL})
	token := server.JoinToken(t, "")
	r.agent = harness.StartSpireAgent(t, harness.AgentConfig{Server: server, JoinToken: token})
	parent := harness.JoinTokenAgentID(td, token)
	for id, uid := range map[string]int{idProducer: producerUID, idConsumer: consumerUID} {
		server.CreateEntry(t, harness.Entry{ParentID: parent, SPIFFEID: id, Selectors: []string{"unix:uid:" + strconv.Itoa(uid)},
			X509SVIDTTL: workloadSVIDTTL, DNSNames: []string{dnsNames[id]}})
	}
	server.CreateEntry(t, harness.Entry{ParentID: parent, SPIFFEID: idKafka, Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())},
		X509SVIDTTL: time.Hour})
	r.bundlePEM = server.BundlePEM(t)
	r.kafka = harness.X509Source(t, r.agent.Addr, idKafka)
}

// startVault runs a non-dev Vault (TLS, file storage: the Transit key
// survives a restart, which a dev server's memory would not), initialised
// with one unseal share, with Transit, cert auth trusting the SPIRE
// bundle, a file audit device, and tokens capped at tokenMaxTTL.
func (r *rig) startVault() {
	t := r.t
	r.vault = harness.StartVault(t, harness.VaultOptions{TLS: true})
	init, err := r.vault.Client(t).Sys().Init(&vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("vault init: %v", err)
	}
	r.vault.RootToken, r.unsealKey = init.RootToken, init.Keys[0]
	r.unseal()
	r.vault.SetUpTransitCertAuth(t, harness.TransitCertAuth{
		Ring: ring, CAPEM: r.bundlePEM,
		Policies: map[string]string{
			"recordspire-producer": transitpolicy.Producer("transit", ring),
			"recordspire-consumer": transitpolicy.Consumer("transit", ring),
		},
		Roles: map[string]harness.CertRole{
			"producer": {SPIFFEID: idProducer, Policy: "recordspire-producer"},
			"consumer": {SPIFFEID: idConsumer, Policy: "recordspire-consumer"},
		},
	})
	root := r.vault.Client(t)
	if err := root.Sys().TuneMount("auth/cert", vaultapi.MountConfigInput{MaxLeaseTTL: tokenMaxTTL}); err != nil {
		t.Fatalf("tune cert auth: %v", err)
	}
	r.auditLog = filepath.Join(r.vault.Dir, "audit.log")
	if err := root.Sys().EnableAuditWithOptions("file", &vaultapi.EnableAuditOptions{Type: "file",
		Options: map[string]string{"file_path": r.auditLog}}); err != nil {
		t.Fatalf("enable audit: %v", err)
	}
}

// unseal unseals Vault with its one share and waits until it is active.
func (r *rig) unseal() {
	t := r.t
	c := r.vault.Client(t)
	harness.Eventually(t, 30*time.Second, func() error {
		st, err := c.Sys().Unseal(r.unsealKey)
		if err != nil {
			return err
		}
		if st.Sealed {
			return errors.New("still sealed")
		}
		h, err := c.Sys().Health()
		if err != nil {
			return err
		}
		if h.Sealed || h.Standby {
			return fmt.Errorf("health: sealed %v, standby %v", h.Sealed, h.Standby)
		}
		return nil
	})
}

// startKafka runs kfake with 3 brokers, mTLS with the SPIRE SVID of
// idKafka for any member of the trust domain, the topic's partitions led
// by the three brokers, and a hook counting the records of topic that
// arrive in Produce requests.
func (r *rig) startKafka() {
	trust := spiffeid.RequireTrustDomainFromString(td)
	r.cluster = harness.StartKafka3(r.t, tlsconfig.MTLSServerConfig(r.kafka, r.kafka, tlsconfig.AuthorizeMemberOf(trust)),
		tlsconfig.MTLSClientConfig(r.kafka, r.kafka, tlsconfig.AuthorizeMemberOf(trust)), topic, partitions, r.inspect)
}

func (r *rig) inspect(req *kmsg.ProduceRequest) {
	codec := batch.NewCodec(0)
	for _, tp := range req.Topics {
		if tp.Topic != topic {
			continue
		}
		for _, p := range tp.Partitions {
			bs, _, err := codec.Decode(p.Records)
			if err != nil {
				continue
			}
			r.mu.Lock()
			for i := range bs {
				r.arrived += len(bs[i].Records)
			}
			r.mu.Unlock()
		}
	}
}

// arrivedCount is how many records of topic the brokers have received.
func (r *rig) arrivedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.arrived
}

// direct is a franz-go client with the brokers' own SVID that reads the
// cluster without any gateway.
func (r *rig) direct(opts ...kgo.Opt) *kgo.Client {
	cfg := tlsconfig.MTLSClientConfig(r.kafka, r.kafka, tlsconfig.AuthorizeMemberOf(spiffeid.RequireTrustDomainFromString(td)))
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.cluster.ListenAddrs()...), kgo.DialTLSConfig(cfg)}, opts...)...)
	if err != nil {
		r.t.Fatal(err)
	}
	return cl
}

// helper is one edgeid-helper process running as a workload's uid.
type helper struct {
	uid    int
	listen string // the gateway's bootstrap listener
	log    *harness.SyncBuffer
}

var listening = regexp.MustCompile(`msg="Gateway listening".* listen=(\S+) upstream=(\S+)`)

// startHelper writes a helper.conf with an edge-mode kafka_gateway that
// encrypts topic (role, and extra encrypt keys), and runs edgeid-helper
// as uid with setpriv until the test ends.
func (r *rig) startHelper(uid int, id, role, extra string) *helper {
	t := r.t
	dir := harness.ShortTempDir(t)
	quarantine := filepath.Join(dir, "quarantine")
	ca := filepath.Join(dir, "vault-ca.pem")
	pem, err := os.ReadFile(r.vault.CACertPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(os.WriteFile(ca, pem, 0o644), os.Mkdir(quarantine, 0o700), os.Chown(quarantine, uid, uid)); err != nil {
		t.Fatal(err)
	}
	upstream := r.cluster.ListenAddrs()[0]
	conf := fmt.Sprintf(`agent_address = %q
spiffe_id = %q
kafka_gateway "uplink" {
  upstreams = [%q]
  upstream_spiffe_ids = [%q]
  encrypt {
    topics         = ["site-a.*"]
    key_ring       = %q
    vault_address  = %q
    vault_ca_file  = %q
    vault_timeout  = "3s"
    cert_role      = %q
    quarantine_dir = %q
%s
  }
}
`, r.agent.SocketPath, id, upstream, idKafka, ring, r.vault.Addr, ca, role, quarantine, extra)
	path := filepath.Join(dir, "helper.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("helper.conf of uid %d:\n%s", uid, conf)
	h := &helper{uid: uid, log: &harness.SyncBuffer{}}
	cmd := exec.Command(r.setpriv, r.asUID(uid, r.helperBin, "-config", path)...)
	cmd.Env = harness.CleanEnv(dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = h.log, h.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("helper (uid %d) log:\n%s", uid, h.log.String())
		}
	})
	harness.Eventually(t, 30*time.Second, func() error {
		for _, m := range listening.FindAllStringSubmatch(h.log.String(), -1) {
			if m[2] == upstream {
				h.listen = m[1]
				return nil
			}
		}
		return fmt.Errorf("helper of uid %d has no listener for %s yet:\n%s", uid, upstream, h.log.String())
	})
	return h
}

// asUID is setpriv's arguments to run argv as uid, with no groups.
func (r *rig) asUID(uid int, argv ...string) []string {
	u := strconv.Itoa(uid)
	return append([]string{"--reuid=" + u, "--regid=" + u, "--clear-groups"}, argv...)
}

// kcat runs kcat as h's uid against h's plaintext listener.
func (r *rig) kcat(ctx context.Context, h *helper, stdin string, args ...string) *exec.Cmd {
	args = append([]string{r.kcatBin, "-b", h.listen, "-X", "broker.address.family=v4"}, args...)
	cmd := exec.CommandContext(ctx, r.setpriv, r.asUID(h.uid, args...)...)
	cmd.Env = harness.CleanEnv("/")
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// login is one successful cert auth login in Vault's audit log.
type login struct {
	at     time.Time
	role   string
	serial string
}

// logins reads the successful cert auth logins from the audit log.
func (r *rig) logins() []login {
	data, err := os.ReadFile(r.auditLog)
	if err != nil {
		r.t.Fatalf("audit log: %v", err)
	}
	var out []login
	for _, line := range strings.Split(string(data), "\n") {
		var e struct {
			Time    time.Time `json:"time"`
			Type    string    `json:"type"`
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
			Auth struct {
				Metadata map[string]string `json:"metadata"`
			} `json:"auth"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Type != "response" || e.Request.Path != "auth/cert/login" || e.Auth.Metadata == nil {
			continue
		}
		out = append(out, login{at: e.Time, role: e.Auth.Metadata["cert_name"], serial: e.Auth.Metadata["serial_number"]})
	}
	return out
}
