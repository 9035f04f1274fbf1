package kubeedge

import (
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
	wire "github.com/edgeid/edgeid/plugins/common/kubeedge"
)

// fuzzState is a configured server state with a freshly generated CA, for
// running the verifier on whatever the parser accepts.
func fuzzState(f *testing.F) (*state, *kubeedgeca.CA) {
	f.Helper()
	ca, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		f.Fatal(err)
	}
	path := f.TempDir() + "/rootCA.crt"
	if err := ca.WriteCertificate(path); err != nil {
		f.Fatal(err)
	}
	cfg, cfgStatus := buildConfig(configRequest("example.org", "cluster = \"c\"\nca_bundle_path = \""+path+"\"\n"))
	if err := cfgStatus.Err(); err != nil {
		f.Fatal(err)
	}
	bundle, err := loadCABundle(cfg.caPaths)
	if err != nil {
		f.Fatal(err)
	}
	return &state{config: cfg, bundle: bundle, chains: newChainCache(64)}, ca
}

// FuzzParseAttestationPayload feeds arbitrary bytes to the server's payload
// parser and, when it accepts them, to chain verification. Neither may
// panic, and every rejection must be an error, never a half-parsed chain.
func FuzzParseAttestationPayload(f *testing.F) {
	st, ca := fuzzState(f)
	creds, err := ca.IssueNode("edge-1", kubeedgeca.SignOptions{})
	if err != nil {
		f.Fatal(err)
	}
	valid := payloadFor(creds.Certificate)
	f.Add(valid)
	f.Add(payloadFor(creds.Certificate, ca.Certificate()))
	f.Add([]byte(`{"version":1,"certificates":["AAEC"]}`))
	f.Add([]byte(`{"version":1,"certificates":[]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Add(valid[:len(valid)/2])
	now := time.Now()
	h := &hooks{now: func() time.Time { return now }, rand: rand.Reader}
	f.Fuzz(func(t *testing.T, payload []byte) {
		// The production path: decode, cache lookup, parse, verify, challenge.
		if ex, challenge, err := st.begin(payload, h); err != nil {
			switch status.Code(err) {
			case codes.InvalidArgument, codes.PermissionDenied:
			default:
				t.Fatalf("begin returned %v, want InvalidArgument or PermissionDenied", err)
			}
		} else if ex == nil || len(challenge) == 0 || ex.v.nodeName == "" {
			t.Fatal("begin accepted a payload without a usable result")
		}

		chain, err := ParseAttestationPayload(payload)
		if err != nil {
			if chain != nil {
				t.Fatal("parser returned a chain with an error")
			}
			if !strings.HasPrefix(err.Error(), "kubeedge: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		if len(payload) > wire.MaxPayloadBytes || len(chain) == 0 || len(chain) > wire.MaxCertificates {
			t.Fatalf("parser accepted %d bytes with %d certificates", len(payload), len(chain))
		}
		for _, c := range chain {
			if c == nil || len(c.Raw) > wire.MaxCertificateBytes {
				t.Fatal("parser accepted an oversized or nil certificate")
			}
		}
		// Whatever parses must go through verification without panicking.
		if v, err := st.verifyChain(chain, now); err == nil {
			if _, err := x509.ParseCertificate(v.leaf.Raw); err != nil || v.nodeName == "" {
				t.Fatalf("verified an unusable leaf: %v", err)
			}
		}
	})
}

// FuzzDecodeChallengeResponse does the same for the second message.
func FuzzDecodeChallengeResponse(f *testing.F) {
	st, ca := fuzzState(f)
	creds, err := ca.IssueNode("edge-1", kubeedgeca.SignOptions{})
	if err != nil {
		f.Fatal(err)
	}
	nonce := make([]byte, wire.NonceSize)
	now := time.Now()
	f.Add(respondWith(creds.Key, "example.org", &wire.Challenge{Nonce: nonce}, now))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = st.verifyChallengeResponse(creds.Certificate, nonce, raw, now, now)
	})
}

// FuzzParseDenyList feeds arbitrary bytes to the deny_list_file parser. It
// may not panic; what it accepts holds only valid lowercase Node names and
// normalised serials, each at a real line; what it refuses yields no list
// and an error that names lines.
func FuzzParseDenyList(f *testing.F) {
	f.Add([]byte("# lost\nnode edge-lost-0042 # truck\r\nserial 5C:0F:FE:E1\nnode Edge.Site-A\n"))
	f.Add([]byte("nodes x\nnode a_b\nserial zz\n\x00\n"))
	f.Add([]byte(""))
	f.Add([]byte("node \u212aelvin\n"))
	f.Add([]byte("serial 0x00\tnode\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := parseDenyList(data)
		if err != nil {
			if list != nil {
				t.Fatal("parser returned a list with an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "line ") && !strings.HasPrefix(msg, "file is ") {
				t.Fatalf("error names no line: %q", msg)
			}
			if n := strings.Count(msg, "; line "); n >= maxDenyListProblems {
				t.Fatalf("error names %d lines, over the bound", n+1)
			}
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		for name, line := range list.nodes {
			if !validNodeName(name) || strings.ToLower(name) != name || line < 1 || line > lines {
				t.Fatalf("accepted node %q at line %d of %d", name, line, lines)
			}
		}
		for serial, line := range list.serials {
			if norm, err := normalizeSerial(serial); err != nil || norm != serial || line < 1 || line > lines {
				t.Fatalf("accepted serial %q at line %d of %d", serial, line, lines)
			}
		}
	})
}

// configRequest is a Configure request with trustDomain and hcl.
func configRequest(trustDomain, hcl string) *configv1.ConfigureRequest {
	return &configv1.ConfigureRequest{CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: trustDomain}, HclConfiguration: hcl}
}
