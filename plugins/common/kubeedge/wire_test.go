package kubeedge

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
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
		{`{"version":1,"certificates":["AA=="]} {}`, "invalid character '{' after top-level value"},
		{`{"version":1,"certificates":["AA=="],"a\"b":1}`, `unknown field "a\\\"b"`},
		{`{"version":1,"certificates":["AA=="],"\u0076ersion":1}`, `unknown field "\\u0076ersion"`},
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
	for _, ok := range []string{
		`{"version":1,"certificates":["AA=="]}`,
		` {"VERSION":1, "Certificates":["AA=="]} `, // encoding/json matches case-insensitively
		`{"version":1,"certificates":["AA=="],"version":1}`,
	} {
		if _, err := DecodeAttestationData([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// decodeWithDecoder is the reference strict decoder decodeStrict replaces.
func decodeWithDecoder(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

// FuzzDecodeStrict checks that decodeStrict accepts exactly what a
// json.Decoder with DisallowUnknownFields accepts, except keys written with
// escape sequences, which decodeStrict refuses on purpose.
func FuzzDecodeStrict(f *testing.F) {
	f.Add([]byte(`{"version":1,"certificates":["AA=="]}`))
	f.Add([]byte(`{"version":1,"challenge":"AA==","nonce":"AA==","time_unix_milli":5,"signature":"AA=="}`))
	f.Add([]byte(`{"Version":1,"x":{"y":[1,"}"]}}`))
	f.Add([]byte(`{"version":1,"certificates":["AA=="]} []`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(bytes.TrimSpace(b)) == 0 {
			return
		}
		for _, mk := range []func() any{
			func() any { return new(AttestationData) },
			func() any { return new(ChallengeResponse) },
		} {
			got := decodeStrict(b, mk())
			want := decodeWithDecoder(b, mk())
			if (got == nil) != (want == nil) {
				if got != nil && want == nil && bytes.Contains(b, []byte{'\\'}) {
					continue // escaped keys are refused on purpose
				}
				t.Fatalf("%q: decodeStrict %v, json.Decoder %v", b, got, want)
			}
		}
	})
}
