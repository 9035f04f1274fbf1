package helper

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// TestSpiffeHelperCompatibility runs spiffe-helper v0.11.0 and edgeid-helper
// against the same agent, with a spiffe-helper v0.11 config file and with a
// KubeEdge-example camelCase file, and compares what they write.
func TestSpiffeHelperCompatibility(t *testing.T) {
	shBin := harness.SpiffeHelperBin(t)
	sp := startSPIRE(t, 10*time.Minute)
	// One long-lived SVID, so both helpers receive the same one.
	sp.register(t, idApp, "compat", 10*time.Minute)
	harness.FetchX509SVIDFor(t, sp.agent.SocketPath, idApp)

	dir := t.TempDir()
	v011 := func(certDir string) string {
		return `# spiffe-helper v0.11 configuration
agent_address = "` + sp.agent.SocketPath + `"
cert_dir = "` + certDir + `"
daemon_mode = false
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
jwt_bundle_file_name = "jwt_bundle.json"
jwt_svids = [{jwt_audience = "kafka", jwt_extra_audiences = ["mqtt"], jwt_svid_file_name = "jwt_svid.token"}]
hint = "compat"
cert_file_mode = 0640
key_file_mode = 0600
jwt_bundle_file_mode = 0644
jwt_svid_file_mode = 0600
include_federated_domains = true
add_intermediates_to_bundle = false
omit_expired = false
`
	}
	refDir := filepath.Join(dir, "spiffe-helper")
	oursDir := filepath.Join(dir, "edgeid-helper")
	for _, d := range []string{refDir, oursDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	run := func(bin, conf string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-config", conf)
		cmd.Env = harness.CleanEnv(dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s -config %s: %v\n%s", filepath.Base(bin), conf, err, out)
		}
		t.Logf("%s:\n%s", filepath.Base(bin), out)
	}
	run(shBin, writeConf(t, dir, "ref.conf", v011(refDir)))
	run(helperBin(t), writeConf(t, dir, "ours.conf", v011(oursDir)))

	for _, name := range []string{"svid.pem", "svid_key.pem", "svid_bundle.pem", "jwt_bundle.json"} {
		ref, ours := mustRead(t, filepath.Join(refDir, name)), mustRead(t, filepath.Join(oursDir, name))
		if !bytes.Equal(ref, ours) {
			t.Errorf("%s differs from spiffe-helper's:\nspiffe-helper:\n%s\nedgeid-helper:\n%s", name, ref, ours)
		}
	}
	for name, mode := range map[string]os.FileMode{"svid.pem": 0o640, "svid_key.pem": 0o600, "svid_bundle.pem": 0o640, "jwt_bundle.json": 0o644, "jwt_svid.token": 0o600} {
		for _, d := range []string{refDir, oursDir} {
			st, err := os.Stat(filepath.Join(d, name))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != mode {
				t.Errorf("%s/%s mode %v, want %v", filepath.Base(d), name, st.Mode().Perm(), mode)
			}
		}
	}
	// JWT SVIDs are minted per request; check both are valid tokens for the
	// same subject and audience. (spiffe-helper's one-shot mode drops
	// jwt_extra_audiences; edgeid-helper requests them in both modes, as
	// spiffe-helper's daemon mode does.)
	for _, d := range []string{refDir, oursDir} {
		tok, err := jwtsvid.ParseInsecure(strings.TrimSpace(string(mustRead(t, filepath.Join(d, "jwt_svid.token")))), []string{"kafka"})
		if err != nil {
			t.Fatalf("%s jwt_svid.token: %v", filepath.Base(d), err)
		}
		if tok.ID.String() != idApp {
			t.Errorf("%s jwt_svid.token: subject %s", filepath.Base(d), tok.ID)
		}
		t.Logf("%s jwt_svid.token audience %v", filepath.Base(d), tok.Audience)
		if d == oursDir && strings.Join(tok.Audience, ",") != "kafka,mqtt" {
			t.Errorf("edgeid-helper jwt_svid.token audience %v, want [kafka mqtt]", tok.Audience)
		}
	}

	// The KubeEdge SPIRE example's helper.conf shape: camelCase keys, cmd
	// with renewSignal, daemon mode.
	kubeDir := filepath.Join(dir, "kubeedge")
	kube := `agentAddress = "` + sp.agent.SocketPath + `"
cmdArgs = "300"
cmd = "/bin/sleep"
certDir = "` + kubeDir + `"
renewSignal = "SIGUSR1"
svidFileName = "svid.pem"
svidKeyFileName = "svid_key.pem"
svidBundleFileName = "svid_bundle.pem"
`
	conf := writeConf(t, dir, "kubeedge-helper.conf", kube)
	p := startHelper(t, "edgeid-helper-kubeedge", dir, conf, nil)
	harness.Eventually(t, 60*time.Second, func() error {
		_, err := os.Stat(filepath.Join(kubeDir, "svid_bundle.pem"))
		return err
	})
	for _, name := range []string{"svid.pem", "svid_key.pem", "svid_bundle.pem"} {
		ref, ours := mustRead(t, filepath.Join(refDir, name)), mustRead(t, filepath.Join(kubeDir, name))
		if !bytes.Equal(ref, ours) {
			t.Errorf("camelCase config: %s differs from spiffe-helper's", name)
		}
	}
	harness.Eventually(t, 10*time.Second, func() error {
		log := p.Log()
		for _, key := range []string{"agentAddress", "cmdArgs", "certDir", "renewSignal", "svidFileName", "svidKeyFileName", "svidBundleFileName"} {
			if !strings.Contains(log, `key \"`+key+`\" is deprecated`) {
				return &missing{"deprecation warning for " + key}
			}
		}
		if !strings.Contains(log, "Started program") || !strings.Contains(log, "cmd=/bin/sleep") {
			return &missing{"cmd start"}
		}
		return nil
	})
}

type missing struct{ what string }

func (m *missing) Error() string { return "log has no " + m.what }
