package helper

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

// TestPKCS12OpensInOpenSSLAndJava writes the SVID as PKCS#12 keystore and
// truststore with a real SPIRE agent, in both encodings (modern PBES2/AES
// and legacy = true), and opens them with readers other than the library
// that wrote them: `openssl pkcs12 -info` (both stores, the key and the
// chain, and the wrong password is refused) and Java's `keytool` (the key
// entry and the trusted certificates), as a Kafka Java client would.
func TestPKCS12OpensInOpenSSLAndJava(t *testing.T) {
	openssl := harness.RequireCommand(t, "openssl")
	keytool := harness.RequireCommand(t, "keytool")
	sp := startSPIRE(t, time.Hour)
	sp.register(t, idApp, "", 0)
	for _, legacy := range []bool{false, true} {
		name := map[bool]string{false: "modern", true: "legacy"}[legacy]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			certDir := filepath.Join(dir, "certs")
			legacyLine := ""
			if legacy {
				legacyLine = "\n  legacy = true"
			}
			conf := writeConf(t, dir, "helper.conf", `agent_address = "`+sp.agent.SocketPath+`"
cert_dir = "`+certDir+`"
spiffe_id = "`+idApp+`"
daemon_mode = false
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
pkcs12 {
  keystore_file_name = "keystore.p12"
  truststore_file_name = "truststore.p12"
  password_env = "STORE_PASS"`+legacyLine+`
}
`)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, helperBin(t), "-config", conf)
			cmd.Env = append(harness.CleanEnv(dir), "STORE_PASS=s3cret-pw")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("one-shot helper: %v\n%s", err, out)
			}
			ks, ts := filepath.Join(certDir, "keystore.p12"), filepath.Join(certDir, "truststore.p12")
			// run logs every command and its output, except PEM blocks:
			// a private key never reaches the test log.
			run := func(bin string, args ...string) (string, error) {
				out, err := exec.Command(bin, args...).CombinedOutput()
				t.Logf("%s %s (err %v):\n%s", filepath.Base(bin), strings.Join(args, " "), err, withoutPEM(string(out)))
				return string(out), err
			}

			// OpenSSL: the keystore holds a key and the SVID chain, whose
			// leaf carries the SPIFFE ID; the truststore the bundle.
			out, err := run(openssl, "pkcs12", "-info", "-in", ks, "-passin", "pass:s3cret-pw", "-nodes")
			if err != nil {
				t.Fatalf("openssl cannot open the %s keystore: %v", name, err)
			}
			if !strings.Contains(out, "PRIVATE KEY") || strings.Count(out, "BEGIN CERTIFICATE") < 1 {
				t.Fatalf("%s keystore: no key or no certificate in openssl's view", name)
			}
			wantAlg := map[bool]string{false: "PBES2", true: "pbeWithSHA1And3-KeyTripleDES-CBC"}[legacy]
			if !strings.Contains(out, wantAlg) {
				t.Errorf("%s keystore is not encrypted with %s", name, wantAlg)
			}
			leaf, err := run(openssl, "pkcs12", "-in", ks, "-passin", "pass:s3cret-pw", "-nokeys", "-clcerts")
			if err != nil {
				t.Fatal(err)
			}
			text, err := exec.Command("sh", "-c", "printf '%s' \"$0\" | "+openssl+" x509 -noout -ext subjectAltName", leaf).CombinedOutput()
			if err != nil || !strings.Contains(string(text), "URI:"+idApp) {
				t.Errorf("keystore leaf does not name %s: %v\n%s", idApp, err, text)
			}
			if _, err := run(openssl, "pkcs12", "-info", "-in", ts, "-passin", "pass:s3cret-pw", "-nokeys"); err != nil {
				t.Errorf("openssl cannot open the %s truststore: %v", name, err)
			}
			if _, err := run(openssl, "pkcs12", "-info", "-in", ks, "-passin", "pass:wrong", "-nodes"); err == nil {
				t.Errorf("openssl opened the %s keystore with the wrong password", name)
			}

			// Java: what a Kafka Java client's ssl.keystore.type=PKCS12 reads.
			out, err = run(keytool, "-list", "-storetype", "PKCS12", "-keystore", ks, "-storepass", "s3cret-pw")
			if err != nil || !strings.Contains(out, "PrivateKeyEntry") {
				t.Errorf("keytool cannot list a key entry in the %s keystore: %v", name, err)
			}
			out, err = run(keytool, "-list", "-storetype", "PKCS12", "-keystore", ts, "-storepass", "s3cret-pw")
			if err != nil || !strings.Contains(out, "trustedCertEntry") {
				t.Errorf("keytool cannot list trusted certificates in the %s truststore: %v", name, err)
			}
		})
	}
}

// withoutPEM replaces the body of every PEM block with its type.
func withoutPEM(s string) string {
	var b strings.Builder
	inside := false
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(line, "-----BEGIN "):
			inside = true
			b.WriteString("[" + strings.Trim(line, "-") + " omitted]\n")
		case strings.HasPrefix(line, "-----END "):
			inside = false
		case !inside:
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
