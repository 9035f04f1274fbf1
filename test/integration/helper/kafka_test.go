package helper

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/twmb/franz-go/pkg/kfake"
)

// broker is a kfake mTLS broker whose identity is an SVID and which admits
// only allow-listed SPIFFE IDs, as a Kafka principal mapped from the
// certificate's SPIFFE ID would.
type broker struct {
	addr string

	mu       sync.Mutex
	accepted map[string]string // client leaf serial -> SPIFFE ID
	rejected []string
}

func startBroker(t *testing.T, socket, topic string, allowed ...string) *broker {
	t.Helper()
	source := watchSVID(t, socket, idBroker)
	b := &broker{accepted: map[string]string{}}
	allow := map[string]bool{}
	for _, id := range allowed {
		allow[id] = true
	}
	authorize := tlsconfig.AdaptMatcher(func(id spiffeid.ID) error {
		if !allow[id.String()] {
			b.mu.Lock()
			b.rejected = append(b.rejected, id.String())
			b.mu.Unlock()
			return fmt.Errorf("principal %s is not allowed", id)
		}
		return nil
	})
	cfg := &tls.Config{
		ClientAuth: tls.RequireAndVerifyClientCert,
		// Runs after go-spiffe verified the chain and authorised the ID.
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			id, _ := x509svid.IDFromCert(leaf)
			b.mu.Lock()
			b.accepted[leaf.SerialNumber.Text(16)] = id.String()
			b.mu.Unlock()
			return nil
		},
	}
	tlsconfig.HookMTLSServerConfig(cfg, source, source, authorize)
	port := harness.FreePort(t)
	// kfake advertises the host of its listener's address; a listener that
	// names itself "localhost" makes clients connect to, and verify, the
	// broker as "localhost", which the broker SVID carries as a DNS SAN.
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.TLS(cfg), kfake.SeedTopics(1, topic),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			l, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			return namedListener{Listener: l, host: "localhost"}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	b.addr = c.ListenAddrs()[0]
	return b
}

func (b *broker) clientSerials(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, v := range b.accepted {
		if v == id {
			n++
		}
	}
	return n
}

// namedListener reports its address with a host name instead of its IP.
type namedListener struct {
	net.Listener
	host string
}

func (l namedListener) Addr() net.Addr {
	return hostAddr(net.JoinHostPort(l.host, strconv.Itoa(l.Listener.Addr().(*net.TCPAddr).Port)))
}

type hostAddr string

func (a hostAddr) Network() string { return "tcp" }
func (a hostAddr) String() string  { return string(a) }

// kcatMetadata asks the broker for metadata through a properties file.
func kcatMetadata(kcat, props string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-F", props, "-L", "-m", "5").CombinedOutput()
	return string(out), err
}

// TestKafkaThroughKcat: kcat (librdkafka) produces and consumes through a
// kfake mTLS broker using only the helper-rendered properties file, across
// at least 5 rotations with on_rotate = "restart"; the broker refuses
// other trust domains and IDs not on its allow-list.
//
// The broker is verified by host name (ssl.endpoint.identification.algorithm
// = https): its SVID carries the DNS SAN "localhost" and kfake advertises
// "localhost". kcat cannot take "none" from a -F file: its file reader
// drops ssl.endpoint.identification.algorithm as a Java-only key, so the
// librdkafka default (https) applies whatever the file says.
func TestKafkaThroughKcat(t *testing.T) {
	kcat := harness.RequireCommand(t, "kcat")
	sp := startSPIRE(t, 16*time.Second)
	sp.register(t, idApp, "", 16*time.Second)
	sp.server.CreateEntry(t, harness.Entry{
		ParentID: sp.agentID, SPIFFEID: idBroker, DNSNames: []string{"localhost"},
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}, X509SVIDTTL: 10 * time.Minute,
	})
	sp.register(t, idIntruder, "", 10*time.Minute)
	harness.FetchX509SVIDFor(t, sp.agent.SocketPath, idBroker)
	harness.FetchX509SVIDFor(t, sp.agent.SocketPath, idApp)

	const topic = "edge-events"
	b := startBroker(t, sp.agent.SocketPath, topic, idApp)

	dir := harness.ShortTempDir(t)
	certDir := filepath.Join(dir, "certs")
	genLog := filepath.Join(dir, "generated.log")
	healthPort := harness.FreePort(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	conf := writeConf(t, dir, "helper.conf", `
agent_address = "`+sp.agent.SocketPath+`"
cert_dir = "`+certDir+`"
spiffe_id = "`+idApp+`"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
cmd = "`+self+`"
on_rotate = "restart"
stop_timeout = "8s"
kafka {
  bootstrap_servers = "`+b.addr+`"
  endpoint_identification_algorithm = "https"
  librdkafka_properties = { "broker.address.family" = "v4" }
}
health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = `+strconv.Itoa(healthPort)+`
}
`)
	props := filepath.Join(certDir, "kafka.properties")
	env := append(harness.CleanEnv(dir),
		"EDGEID_TEST_ROLE=kafka-producer", "EDGEID_KCAT="+kcat, "EDGEID_PROPS="+props,
		"EDGEID_TOPIC="+topic, "EDGEID_GENLOG="+genLog)
	p := startHelper(t, "edgeid-helper-producer", dir, conf, env)
	healthAddr := "127.0.0.1:" + strconv.Itoa(healthPort)

	harness.Eventually(t, 60*time.Second, func() error {
		_, err := os.Stat(props)
		return err
	})
	t.Logf("rendered %s:\n%s", props, mustRead(t, props))
	if text := string(mustRead(t, props)); !strings.Contains(text, "ssl.endpoint.identification.algorithm=https") || !strings.Contains(text, "bootstrap.servers=localhost:") {
		t.Fatalf("rendered properties lack host-name verification or the broker name")
	}

	t.Run("broker accepts only allow-listed IDs", func(t *testing.T) {
		// The app's properties work.
		if out, err := kcatMetadata(kcat, props); err != nil || !strings.Contains(out, topic) {
			t.Fatalf("allowed ID refused: %v\n%s", err, out)
		}
		// A second helper renders properties for an ID not on the list.
		idir := filepath.Join(dir, "intruder")
		iconf := writeConf(t, dir, "intruder.conf", `
agent_address = "`+sp.agent.SocketPath+`"
cert_dir = "`+idir+`"
spiffe_id = "`+idIntruder+`"
daemon_mode = false
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
kafka {
  bootstrap_servers = "`+b.addr+`"
  endpoint_identification_algorithm = "https"
  librdkafka_properties = { "broker.address.family" = "v4" }
}
`)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, helperBin(t), "-config", iconf).CombinedOutput(); err != nil {
			t.Fatalf("one-shot helper: %v\n%s", err, out)
		}
		out, err := kcatMetadata(kcat, filepath.Join(idir, "kafka.properties"))
		if err == nil {
			t.Fatalf("broker accepted %s, which is not on its allow-list:\n%s", idIntruder, out)
		}
		b.mu.Lock()
		rejected := strings.Join(b.rejected, ",")
		b.mu.Unlock()
		if !strings.Contains(rejected, idIntruder) {
			t.Fatalf("broker did not reject %s by ID (rejected: %s)", idIntruder, rejected)
		}
	})

	t.Run("broker refuses another trust domain", func(t *testing.T) {
		odir := t.TempDir()
		certPEM, keyPEM := foreignSVID(t, "spiffe://other.test/edge/site-a/app")
		if err := os.WriteFile(filepath.Join(odir, "svid.pem"), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(odir, "svid_key.pem"), keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		// The helper-rendered file with the certificate and key swapped for
		// the foreign ones; the broker CA stays ours.
		text := string(mustRead(t, props))
		text = strings.Replace(text, "ssl.certificate.location="+filepath.Join(certDir, "svid.pem"), "ssl.certificate.location="+filepath.Join(odir, "svid.pem"), 1)
		text = strings.Replace(text, "ssl.key.location="+filepath.Join(certDir, "svid_key.pem"), "ssl.key.location="+filepath.Join(odir, "svid_key.pem"), 1)
		oprops := filepath.Join(odir, "kafka.properties")
		if err := os.WriteFile(oprops, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := kcatMetadata(kcat, oprops); err == nil {
			t.Fatalf("broker accepted a client from another trust domain:\n%s", out)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, id := range b.accepted {
			if strings.HasPrefix(id, "spiffe://other.test/") {
				t.Fatalf("broker accepted %s", id)
			}
		}
	})
	t.Run("rotation with restart", func(t *testing.T) {
		serial, _ := fileSerial(filepath.Join(certDir, "svid.pem"))
		for i := 1; i <= 5; i++ {
			serial = waitSerialChange(t, filepath.Join(certDir, "svid.pem"), serial, 60*time.Second)
			t.Logf("rotation %d: serial %s", i, serial)
		}
		// Let the producer started for the last SVID deliver through its
		// own connection, then stop everything gracefully.
		harness.Eventually(t, 30*time.Second, func() error {
			if n := b.clientSerials(idApp); n < 6 {
				return fmt.Errorf("broker saw %d client certificates of %s, want >= 6", n, idApp)
			}
			return nil
		})
		time.Sleep(2 * time.Second)
		starts, err := metric(healthAddr, "edgeid_helper_process_starts_total")
		if err != nil {
			t.Fatal(err)
		}
		p.Stop()
		if exited, werr := p.Exited(); !exited || werr != nil {
			t.Fatalf("helper did not stop cleanly: exited=%v err=%v", exited, werr)
		}
		if starts < 6 {
			t.Errorf("producer started %v times, want >= 6 (first + 5 rotations)", starts)
		}

		generated := map[string]bool{}
		f, err := os.Open(genLog)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			generated["msg-"+strings.TrimSpace(sc.Text())] = true
		}
		f.Close()

		// Consume with kcat using only the rendered properties file.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, kcat, "-F", props, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q").Output()
		if err != nil {
			t.Fatalf("kcat consume: %v", err)
		}
		consumed := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" {
				consumed[line]++
			}
		}
		var missingMsgs []string
		for m := range generated {
			if consumed[m] == 0 {
				missingMsgs = append(missingMsgs, m)
			}
		}
		t.Logf("%d messages generated over %v producer starts, %d consumed, %d failed; broker saw %d client certificates of %s",
			len(generated), starts, len(consumed), len(missingMsgs), b.clientSerials(idApp), idApp)
		if len(generated) < 200 {
			t.Errorf("only %d messages generated", len(generated))
		}
		if len(missingMsgs) > 0 {
			t.Errorf("%d messages never arrived, e.g. %v", len(missingMsgs), missingMsgs[:min(5, len(missingMsgs))])
		}
	})

}

// foreignSVID issues a self-signed CA for another trust domain and an SVID
// from it.
func foreignSVID(t *testing.T, id string) (certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(id)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other.test"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
