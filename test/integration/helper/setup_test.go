package helper

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

const td = "example.org"

// IDs the tests register; every test process runs as the same uid, so each
// process is offered every SVID and picks one by spiffe_id or hint.
const (
	idApp       = "spiffe://example.org/edge/site-a/app"
	idBroker    = "spiffe://example.org/cloud/kafka"
	idMosquitto = "spiffe://example.org/edge/site-a/mosquitto"
	idIntruder  = "spiffe://example.org/edge/site-a/intruder"
)

// spire is a server and one agent whose workloads are selected by uid.
type spire struct {
	server  *harness.SpireServer
	agent   *harness.SpireAgent
	agentID string
}

// startSPIRE starts a server with svidTTL as its default X.509 SVID TTL and
// an agent attested by join token.
func startSPIRE(t *testing.T, svidTTL time.Duration) *spire {
	t.Helper()
	s := harness.StartSpireServer(t, harness.ServerConfig{TrustDomain: td, X509SVIDTTL: svidTTL})
	token := s.JoinToken(t, "")
	a := harness.StartSpireAgent(t, harness.AgentConfig{Server: s, JoinToken: token})
	return &spire{server: s, agent: a, agentID: harness.JoinTokenAgentID(td, token)}
}

// register gives every process of this uid the SPIFFE ID id.
func (sp *spire) register(t *testing.T, id, hint string, ttl time.Duration) {
	t.Helper()
	sp.server.CreateEntry(t, harness.Entry{
		ParentID:    sp.agentID,
		SPIFFEID:    id,
		Selectors:   []string{"unix:uid:" + strconv.Itoa(os.Getuid())},
		X509SVIDTTL: ttl,
		Hint:        hint,
	})
}

// helperBin builds edgeid-helper once per test process.
func helperBin(t *testing.T) string {
	t.Helper()
	return harness.BuildBinary(t, "./helper/cmd/edgeid-helper", "edgeid-helper").Path
}

// writeConf writes a config file into dir.
func writeConf(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startHelper runs edgeid-helper with a config and returns the process.
func startHelper(t *testing.T, name, dir, conf string, env []string, args ...string) *harness.Process {
	t.Helper()
	if env == nil {
		env = harness.CleanEnv(dir)
	}
	return harness.StartProcess(t, harness.ProcessSpec{
		Name: name,
		Bin:  helperBin(t),
		Args: append([]string{"-config", conf}, args...),
		Dir:  dir,
		Env:  env,
	})
}

// parseSet parses a cert file and a key file and reports whether the key
// belongs to the leaf. Parse errors mean a torn or partial file.
func parseSet(certPEM, keyPEM []byte) (leaf *x509.Certificate, matched bool, err error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// Distinguish a mismatch from a parse failure.
		if _, cerr := firstCert(certPEM); cerr != nil {
			return nil, false, fmt.Errorf("certificate: %w", cerr)
		}
		if _, kerr := parseKey(keyPEM); kerr != nil {
			return nil, false, fmt.Errorf("key: %w", kerr)
		}
		c, _ := firstCert(certPEM)
		return c, false, nil
	}
	leaf, err = x509.ParseCertificate(pair.Certificate[0])
	return leaf, true, err
}

func firstCert(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE block")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseKey(data []byte) (crypto.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParsePKCS8PrivateKey(b.Bytes)
}

// metric scrapes one unlabelled sample from the helper's /metrics.
func metric(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// fileSerial returns the serial of the first certificate in path.
func fileSerial(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	c, err := firstCert(data)
	if err != nil {
		return "", err
	}
	return c.SerialNumber.Text(16), nil
}

// waitSerialChange waits until the certificate in path has a serial other
// than prev and returns it.
func waitSerialChange(t *testing.T, path, prev string, timeout time.Duration) string {
	t.Helper()
	var cur string
	harness.Eventually(t, timeout, func() error {
		s, err := fileSerial(path)
		if err != nil {
			return err
		}
		if s == prev {
			return fmt.Errorf("%s still holds serial %s", path, prev)
		}
		cur = s
		return nil
	})
	return cur
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var _ = bytes.Equal

// svidSource follows the Workload API and serves one SPIFFE ID's SVID and
// the bundles, for test-side TLS peers. (go-spiffe v2.6.0's X509Source
// reads its bundle set without its lock, which the race detector reports
// during rotations, so the tests use this instead.)
type svidSource struct {
	id    string
	state atomic.Pointer[workloadapi.X509Context]
	ready chan struct{}
	once  sync.Once
}

// watchSVID starts following the Workload API at socket for id and waits
// for the first SVID.
func watchSVID(t *testing.T, socket, id string) *svidSource {
	t.Helper()
	s := &svidSource{id: id, ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = workloadapi.WatchX509Context(ctx, s, workloadapi.WithAddr("unix://"+socket))
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-s.ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("no SVID for %s from %s", id, socket)
	}
	return s
}

func (s *svidSource) OnX509ContextUpdate(c *workloadapi.X509Context) {
	for _, sv := range c.SVIDs {
		if sv.ID.String() == s.id {
			s.state.Store(c)
			s.once.Do(func() { close(s.ready) })
			return
		}
	}
}

func (s *svidSource) OnX509ContextWatchError(error) {}

// GetX509SVID implements x509svid.Source.
func (s *svidSource) GetX509SVID() (*x509svid.SVID, error) {
	c := s.state.Load()
	for _, sv := range c.SVIDs {
		if sv.ID.String() == s.id {
			return sv, nil
		}
	}
	return nil, fmt.Errorf("no SVID for %s", s.id)
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (s *svidSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return s.state.Load().Bundles.GetX509BundleForTrustDomain(td)
}
