package kubeedge

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	r2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	msg := SignedMessage("example.org", make([]byte, NonceSize), make([]byte, NonceSize), 1)
	for _, k := range []struct {
		name string
		sig  func() ([]byte, error)
		pub  any
	}{
		{"p256", func() ([]byte, error) { return Sign(nil, p256, msg) }, p256.Public()},
		{"p384", func() ([]byte, error) { return Sign(nil, p384, msg) }, p384.Public()},
		{"rsa-pss", func() ([]byte, error) { return Sign(nil, r2048, msg) }, r2048.Public()},
	} {
		sig, err := k.sig()
		if err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
		if err := Verify(k.pub, msg, sig); err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
		other := SignedMessage("example.com", make([]byte, NonceSize), make([]byte, NonceSize), 1)
		if err := Verify(k.pub, other, sig); err == nil {
			t.Fatalf("%s: signature verified for another trust domain", k.name)
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if err := CheckPublicKey(small.Public()); err == nil || !strings.Contains(err.Error(), "under the 2048 bit minimum") {
		t.Fatalf("1024-bit RSA: %v", err)
	}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := CheckPublicKey(edPub); err == nil || !strings.Contains(err.Error(), "unsupported node key type") {
		t.Fatalf("ed25519: %v", err)
	}
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"version":1,"certificates":["AA=="]} {}`, "trailing data"},
		{``, "empty input"},
		{`[]`, "cannot unmarshal array"},
		{`{"version":1,"certificates":["AA=="],"x":1}`, `unknown field "x"`},
		{`null`, "unsupported attestation payload version 0"},
		{`{"version":1,"certificates":[""]}`, "certificate 0 is empty"},
	}
	for _, tt := range tests {
		_, err := DecodeAttestationData([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.in, err, tt.want)
		}
	}
	if _, err := DecodeAttestationData([]byte(`{"version":1,"certificates":["AA=="]}`)); err != nil {
		t.Fatal(err)
	}
}
