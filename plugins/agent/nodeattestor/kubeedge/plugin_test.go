package kubeedge_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	"github.com/spiffe/spire-plugin-sdk/plugintest"
	agentnav1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/nodeattestor/v1"
	servernav1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/nodeattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
	agent "github.com/edgeid/edgeid/plugins/agent/nodeattestor/kubeedge"
	wire "github.com/edgeid/edgeid/plugins/common/kubeedge"
	server "github.com/edgeid/edgeid/plugins/server/nodeattestor/kubeedge"
)

const td = "example.org"

type node struct {
	dir, certPath, keyPath, caPath string
	ca                             *kubeedgeca.CA
}

func newNode(t *testing.T) *node {
	t.Helper()
	dir := t.TempDir()
	ca, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{dir: dir, ca: ca, certPath: filepath.Join(dir, "certs", "server.crt"), keyPath: filepath.Join(dir, "certs", "server.key"), caPath: filepath.Join(dir, "ca", "rootCA.crt")}
	if err := ca.WriteCertificate(n.caPath); err != nil {
		t.Fatal(err)
	}
	return n
}

// join issues and writes a node certificate for name, as edgecore does.
func (n *node) join(t *testing.T, name string) *kubeedgeca.NodeCredentials {
	t.Helper()
	creds, err := n.ca.IssueNode(name, kubeedgeca.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.WriteFiles(n.certPath, n.keyPath); err != nil {
		t.Fatal(err)
	}
	return creds
}

func loadAgent(t *testing.T, hcl string) (*agentnav1.NodeAttestorPluginClient, error) {
	t.Helper()
	p := agent.New()
	client := new(agentnav1.NodeAttestorPluginClient)
	cfg := new(configv1.ConfigServiceClient)
	plugintest.ServeInBackground(t, plugintest.Config{
		PluginServer:   agentnav1.NodeAttestorPluginServer(p),
		PluginClient:   client,
		ServiceServers: []pluginsdk.ServiceServer{configv1.ConfigServiceServer(p)},
		ServiceClients: []pluginsdk.ServiceClient{cfg},
	})
	_, err := cfg.Configure(context.Background(), &configv1.ConfigureRequest{
		CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: td},
		HclConfiguration:  hcl,
	})
	return client, err
}

func loadServer(t *testing.T, hcl string) *servernav1.NodeAttestorPluginClient {
	t.Helper()
	p := server.New()
	client := new(servernav1.NodeAttestorPluginClient)
	cfg := new(configv1.ConfigServiceClient)
	plugintest.ServeInBackground(t, plugintest.Config{
		PluginServer:   servernav1.NodeAttestorPluginServer(p),
		PluginClient:   client,
		ServiceServers: []pluginsdk.ServiceServer{configv1.ConfigServiceServer(p)},
		ServiceClients: []pluginsdk.ServiceClient{cfg},
	})
	if _, err := cfg.Configure(context.Background(), &configv1.ConfigureRequest{
		CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: td},
		HclConfiguration:  hcl,
	}); err != nil {
		t.Fatal(err)
	}
	return client
}

// attest relays messages between the two plugins the way SPIRE agent and
// server do, and returns the server's verdict.
func attest(t *testing.T, a *agentnav1.NodeAttestorPluginClient, s *servernav1.NodeAttestorPluginClient) (*servernav1.AgentAttributes, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	as, err := a.AidAttestation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := as.Recv()
	if err != nil {
		return nil, err
	}
	ss, err := s.Attest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.Send(&servernav1.AttestRequest{Request: &servernav1.AttestRequest_Payload{Payload: first.GetPayload()}}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		resp, err := ss.Recv()
		if err != nil {
			return nil, err
		}
		if attrs := resp.GetAgentAttributes(); attrs != nil {
			return attrs, nil
		}
		if err := as.Send(&agentnav1.Challenge{Challenge: resp.GetChallenge()}); err != nil {
			t.Fatal(err)
		}
		answer, err := as.Recv()
		if err != nil {
			return nil, err
		}
		if err := ss.Send(&servernav1.AttestRequest{Request: &servernav1.AttestRequest_ChallengeResponse{ChallengeResponse: answer.GetChallengeResponse()}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("too many challenges")
	return nil, nil
}

func (n *node) agentHCL() string {
	return fmt.Sprintf("certificate_path = %q\nprivate_key_path = %q\n", n.certPath, n.keyPath)
}

func (n *node) serverHCL() string {
	return fmt.Sprintf("cluster = \"site-a\"\nca_bundle_path = %q\n", n.caPath)
}

func TestAgentAndServerAttest(t *testing.T) {
	n := newNode(t)
	creds := n.join(t, "edge-1")
	a, err := loadAgent(t, n.agentHCL())
	if err != nil {
		t.Fatal(err)
	}
	s := loadServer(t, n.serverHCL())
	attrs, err := attest(t, a, s)
	if err != nil {
		t.Fatal(err)
	}
	if want := "spiffe://example.org/spire/agent/kubeedge/site-a/edge-1"; attrs.SpiffeId != want {
		t.Fatalf("agent ID %q, want %q", attrs.SpiffeId, want)
	}
	if want := "cert_serial:" + creds.Certificate.SerialNumber.Text(16); attrs.SelectorValues[3] != want {
		t.Fatalf("selector %q, want %q", attrs.SelectorValues[3], want)
	}

	// edgecore rotates the certificate (new key, same node): the agent
	// reads the new files without a restart and keeps its agent ID.
	rotated := n.join(t, "edge-1")
	attrs2, err := attest(t, a, s)
	if err != nil {
		t.Fatal(err)
	}
	if attrs2.SpiffeId != attrs.SpiffeId {
		t.Fatalf("agent ID changed on rotation: %s -> %s", attrs.SpiffeId, attrs2.SpiffeId)
	}
	if want := "cert_serial:" + rotated.Certificate.SerialNumber.Text(16); attrs2.SelectorValues[3] != want {
		t.Fatalf("after rotation selector %q, want %q", attrs2.SelectorValues[3], want)
	}
}

func TestAgentDefaultPathsAndSEC1Key(t *testing.T) {
	n := newNode(t)
	n.join(t, "edge-1")
	key, err := os.ReadFile(n.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(key), "-----BEGIN EC PRIVATE KEY-----") {
		t.Fatalf("server.key is not SEC1: %.40s", key)
	}
	if fi, _ := os.Stat(n.keyPath); fi.Mode().Perm() != 0o600 {
		t.Fatalf("server.key mode %v, want 0600", fi.Mode().Perm())
	}
	if wire.DefaultCertificatePath != "/etc/kubeedge/certs/server.crt" || wire.DefaultPrivateKeyPath != "/etc/kubeedge/certs/server.key" {
		t.Fatal("default paths differ from edgecore's")
	}
}

func TestAgentErrors(t *testing.T) {
	n := newNode(t)
	n.join(t, "edge-1")
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mismatch := &kubeedgeca.NodeCredentials{Key: otherKey}
	mismatchKey := filepath.Join(n.dir, "other.key")
	pemKey, _ := mismatch.KeyPEM()
	os.WriteFile(mismatchKey, pemKey, 0o600)

	tests := []struct {
		name    string
		hcl     string
		code    codes.Code
		message string
	}{
		{"missing certificate", fmt.Sprintf("certificate_path = %q\nprivate_key_path = %q", filepath.Join(n.dir, "nope.crt"), n.keyPath), codes.FailedPrecondition, "unable to load node credentials: open " + filepath.Join(n.dir, "nope.crt") + ": no such file or directory"},
		{"key does not match", fmt.Sprintf("certificate_path = %q\nprivate_key_path = %q", n.certPath, mismatchKey), codes.FailedPrecondition, fmt.Sprintf("unable to load node credentials: the private key in %s does not match the certificate in %s", mismatchKey, n.certPath)},
		{"key file is a certificate", fmt.Sprintf("certificate_path = %q\nprivate_key_path = %q", n.certPath, n.certPath), codes.FailedPrecondition, "unable to load node credentials: " + n.certPath + ": no PEM private key found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := loadAgent(t, tt.hcl)
			if err != nil {
				t.Fatalf("Configure must accept files that do not exist yet: %v", err)
			}
			stream, err := a.AidAttestation(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_, err = stream.Recv()
			if st := status.Convert(err); st.Code() != tt.code || st.Message() != tt.message {
				t.Fatalf("got %v %q\nwant %v %q", st.Code(), st.Message(), tt.code, tt.message)
			}
		})
	}
}

func TestAgentRejectsMalformedChallenge(t *testing.T) {
	n := newNode(t)
	n.join(t, "edge-1")
	a, err := loadAgent(t, n.agentHCL())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := a.AidAttestation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	stream.Send(&agentnav1.Challenge{Challenge: []byte(`{"version":1,"nonce":"AAAA"}`)})
	_, err = stream.Recv()
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "kubeedge: challenge nonce is 3 bytes, want 32" {
		t.Fatalf("got %v", err)
	}
}

func TestAgentConfigure(t *testing.T) {
	if _, err := loadAgent(t, `certificate_pth = "x"`); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `An argument named "certificate_pth" is not expected here`) {
		t.Fatalf("unknown key: got %v", err)
	}
	p := agent.New()
	client := new(agentnav1.NodeAttestorPluginClient)
	plugintest.ServeInBackground(t, plugintest.Config{PluginServer: agentnav1.NodeAttestorPluginServer(p), PluginClient: client})
	stream, err := client.AidAttestation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("unconfigured: got %v, want FailedPrecondition", err)
	}
}
