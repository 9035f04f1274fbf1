package render

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	helperconfig "github.com/edgeid/edgeid/helper/config"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// encryptionTopology is the sample topology (with custodians) whose kafka
// block has the encryption block enc. Site a's pipeline publishes to
// "detections" and subscribes to "commands" and "config-updates"; site
// b's publishes to "site-b.detections".
func encryptionTopology(t *testing.T, enc string) *topology.Topology {
	t.Helper()
	sample := sampleTopology(t)
	src := readSample(t)
	const anchor = "  endpoint_identification = \"https\"\n"
	if !strings.Contains(src, anchor) {
		t.Fatalf("conf/topology.hcl has no %q in its kafka block", anchor)
	}
	src = strings.Replace(src, anchor, anchor+"  encryption {\n"+enc+"  }\n", 1)
	src = strings.Replace(src, "  kv_mount = \"secret\"\n", "  kv_mount = \"secret\"\n  unseal_custodians = [\""+strings.Join(sampleCustodians, "\", \"")+"\"]\n  unseal_threshold  = 2\n", 1)
	top, err := topology.Parse([]byte(src), filepath.Join("..", "..", "conf", "topology.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Sites) != len(sample.Sites) {
		t.Fatal("the sample changed shape")
	}
	return top
}

const sampleEncryption = `    topics    = ["detections", "commands", "site-b.detections"]
    plaintext = "quarantine"
    consumers = ["spiffe://example.org/cloud/analytics"]
    rewrappers = ["spiffe://example.org/ops/key-admin", "spiffe://example.org/cloud/analytics"]
`

// wantEncrypt is what one site's helper and entry should get.
type wantEncrypt struct {
	topics     []string
	ring, role string
	dns        string
	rings      map[string]string // key_rings
}

// TestRenderEncryption: with kafka.encryption, each pipeline's gateway
// gets an encrypt block for its topics (loaded by edgeid-helper as is),
// its entry a DNS name (the SVID's CN, which Vault's cert auth needs), a
// quarantine directory of its own, and the bootstrap a role per identity:
// produce for the publish topics' rings, consume for the subscribe
// topics' and for the cloud consumers, rewrap for the rewrappers.
func TestRenderEncryption(t *testing.T) {
	const roleA, roleB = "edgeid-rc-example-org.edge.site-a.deepstream.cam-pipeline", "edgeid-rc-example-org.edge.site-b.deepstream.cam-pipeline"
	const dnsA, dnsB = "cam-pipeline.deepstream.site-a.example.org", "cam-pipeline.deepstream.site-b.example.org"
	plan := checkEncryption(t, sampleEncryption, map[string]*wantEncrypt{
		"site-a": {[]string{"detections", "commands"}, "", roleA, dnsA, nil},
		"site-b": {[]string{"site-b.detections", "commands"}, "", roleB, dnsB, nil},
	})
	_, boot := vaultFiles(t, plan)
	loadBootstrap(t, boot)
	for _, line := range []string{
		`key_rings = ["commands", "detections", "site-b.detections"]`,
		"identity \"spiffe://example.org/edge/site-a/deepstream/cam-pipeline\" {\n        produce = [\"detections\"]\n        consume = [\"commands\"]\n    }",
		"identity \"spiffe://example.org/edge/site-b/deepstream/cam-pipeline\" {\n        produce = [\"site-b.detections\"]\n        consume = [\"commands\"]\n    }",
		"identity \"spiffe://example.org/cloud/analytics\" {\n        consume = [\"commands\", \"detections\", \"site-b.detections\"]\n        rewrap = [\"commands\", \"detections\", \"site-b.detections\"]\n    }",
		"identity \"spiffe://example.org/ops/key-admin\" {\n        rewrap = [\"commands\", \"detections\", \"site-b.detections\"]\n    }",
		`token_ttl = "15m0s"`,
	} {
		if !strings.Contains(boot, line) {
			t.Errorf("bootstrap.hcl lacks %q:\n%s", line, boot)
		}
	}
	// A prefix with its ring: only site b's pipeline encrypts.
	plan = checkEncryption(t, "    topics = [\"site-b.*\"]\n    key_rings = { \"site-b.*\" = \"site-b\" }\n    undecryptable = \"pass\"\n", map[string]*wantEncrypt{
		"site-a": nil,
		"site-b": {[]string{"site-b.*"}, "site-b", roleB, dnsB, nil},
	})
	_, boot = vaultFiles(t, plan)
	if !strings.Contains(boot, "key_rings = [\"site-b\"]\n    identity \"spiffe://example.org/edge/site-b/deepstream/cam-pipeline\" {\n        produce = [\"site-b\"]\n    }\n}") {
		t.Errorf("bootstrap.hcl:\n%s", boot)
	}
}

// checkEncryption renders the sample with the encryption block enc and
// checks each site's helper and entry against want (nil: no encryption).
func checkEncryption(t *testing.T, enc string, want map[string]*wantEncrypt) *Plan {
	t.Helper()
	top := encryptionTopology(t, enc)
	plan, err := Build(top, testEnv(top))
	if err != nil {
		t.Fatal(err)
	}
	vaultCA, _ := VaultTLSFiles(plan.Host("cloud"))
	for _, h := range plan.Hosts {
		for _, svc := range h.services(KindHelper) {
			w := want[svc.Site]
			conf := fileContent(t, h, filepath.Join(svc.DataDir, "helper.conf"))
			cfg, warns, err := helperconfig.Parse("helper.conf", []byte(conf), helperconfig.Options{})
			if err != nil || len(warns) > 0 {
				t.Fatalf("%s: %v %v\n%s", svc.Site, err, warns, conf)
			}
			ec := cfg.KafkaGateways[0].Encrypt
			i := slices.IndexFunc(plan.Entries, func(e Entry) bool { return e.Site == svc.Site && e.Workload == svc.Workload })
			if w == nil {
				if ec != nil || len(plan.Entries[i].DNSNames) > 0 || len(svc.Needs) > 0 {
					t.Errorf("%s: encrypts (%+v), DNS names %v, needs %v", svc.Site, ec, plan.Entries[i].DNSNames, svc.Needs)
				}
				continue
			}
			wantQ := ""
			if ec != nil && (ec.Undecryptable == "quarantine" || ec.Plaintext == "quarantine") {
				wantQ = filepath.Join(svc.DataDir, "quarantine")
			}
			if ec == nil || !slices.Equal(ec.Topics, w.topics) || ec.KeyRing != w.ring || !maps.Equal(ec.KeyRings, w.rings) || ec.CertRole != w.role ||
				ec.Vault.Address != "https://cloud:8200" || ec.Vault.CACertFile != vaultCA || ec.Undecryptable == "" ||
				ec.QuarantineDir != wantQ || ec.TransitMount != "transit" || ec.CertAuthMount != "cert" {
				t.Errorf("%s: encrypt = %+v\n%s", svc.Site, ec, conf)
				continue
			}
			if !slices.Contains(svc.Needs, vaultCA) || svc.NeedsFrom != "cloud" {
				t.Errorf("%s: the helper does not get Vault's CA from the cloud host: needs %v from %q", svc.Site, svc.Needs, svc.NeedsFrom)
			}
			if wantQ != "" && !slices.ContainsFunc(h.Dirs, func(d Dir) bool { return d.Path == wantQ && d.Mode == 0o700 && d.Owner == svc.Account }) {
				t.Errorf("%s: no quarantine dir %s, 0700, owned by %v", svc.Site, ec.QuarantineDir, svc.Account)
			}
			if !slices.Equal(plan.Entries[i].DNSNames, []string{w.dns}) {
				t.Errorf("%s: entry DNS names %v, want %s", svc.Site, plan.Entries[i].DNSNames, w.dns)
			}
		}
	}
	_, boot := vaultFiles(t, plan)
	loadBootstrap(t, boot)
	return plan
}

// TestRenderEncryptionOff: without kafka.encryption nothing mentions it,
// and no entry has a DNS name.
func TestRenderEncryptionOff(t *testing.T) {
	plan := samplePlan(t)
	_, boot := vaultFiles(t, plan)
	if strings.Contains(boot, "record_encryption") {
		t.Errorf("bootstrap.hcl without encryption:\n%s", boot)
	}
	for _, e := range plan.Entries {
		if e.Workload != "kafka" && e.Workload != "kafka-gateway" && len(e.DNSNames) > 0 {
			t.Errorf("entry %s has DNS names %v without encryption", e.SPIFFEID, e.DNSNames)
		}
	}
}

// TestRenderEncryptionRefused: an embedded run (its Vault has no TLS) is
// refused, naming why.
func TestRenderEncryptionRefused(t *testing.T) {
	top := encryptionTopology(t, sampleEncryption)
	env := testEnv(top)
	env.Embedded = true
	if _, err := Build(top, env); err == nil || !strings.Contains(err.Error(), "the embedded run's Vault serves plain HTTP") {
		t.Errorf("embedded: %v", err)
	}
}

// TestRenderEncryptionKeyRings: a pipeline whose topics need two rings
// gets key_rings naming each entry that is not its own ring.
func TestRenderEncryptionKeyRings(t *testing.T) {
	const roleA, roleB = "edgeid-rc-example-org.edge.site-a.deepstream.cam-pipeline", "edgeid-rc-example-org.edge.site-b.deepstream.cam-pipeline"
	const dnsA, dnsB = "cam-pipeline.deepstream.site-a.example.org", "cam-pipeline.deepstream.site-b.example.org"
	checkEncryption(t, "    topics = [\"commands\", \"detections\", \"site-b.*\"]\n    key_rings = { \"site-b.*\" = \"site-b\", \"detections\" = \"det\" }\n", map[string]*wantEncrypt{
		"site-a": {[]string{"detections", "commands"}, "", roleA, dnsA, map[string]string{"detections": "det"}},
		"site-b": {[]string{"site-b.*", "commands"}, "", roleB, dnsB, map[string]string{"site-b.*": "site-b"}},
	})
}

func TestWorkloadDNSName(t *testing.T) {
	for _, c := range [][4]string{
		{"example.org", "site-a", "deepstream/cam-pipeline", "cam-pipeline.deepstream.site-a.example.org"},
		{"my_td.local", "s", "app", "app.s.my-td.local"},
	} {
		if got := workloadDNSName(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("workloadDNSName(%q, %q, %q) = %q, want %q", c[0], c[1], c[2], got, c[3])
		}
	}
}

func readSample(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "conf", "topology.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

func fileContent(t *testing.T, h *Host, path string) string {
	t.Helper()
	for _, f := range h.Files {
		if f.Path == path {
			return string(f.Content)
		}
	}
	t.Fatalf("%s has no file %s", h.Name, path)
	return ""
}
