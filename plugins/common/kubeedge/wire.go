package kubeedge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// PluginName is the name under which both plugins are configured in SPIRE
// (NodeAttestor "kubeedge"), the selector type, and the agent ID path segment.
const PluginName = "kubeedge"

// ProtocolVersion is the version of the messages in this package. A message
// with another version is rejected.
const ProtocolVersion = 1

// Size limits. They bound what the server accepts before it parses anything.
const (
	// MaxPayloadBytes bounds the encoded AttestationData.
	MaxPayloadBytes = 32 << 10
	// MaxCertificates bounds the chain length: the leaf and intermediates.
	MaxCertificates = 4
	// MaxCertificateBytes bounds one DER certificate.
	MaxCertificateBytes = 6 << 10
	// MaxChallengeBytes bounds the encoded Challenge.
	MaxChallengeBytes = 1 << 10
	// MaxChallengeResponseBytes bounds the encoded ChallengeResponse.
	MaxChallengeResponseBytes = 4 << 10
	// MaxSignatureBytes bounds the signature (RSA-4096 needs 512 bytes).
	MaxSignatureBytes = 1 << 10
	// NonceSize is the size of the server's and of the agent's nonce.
	NonceSize = 32
)

// Default file locations on a KubeEdge edge node, as written by edgecore.
const (
	DefaultCertificatePath = "/etc/kubeedge/certs/server.crt"
	DefaultPrivateKeyPath  = "/etc/kubeedge/certs/server.key"
	DefaultCAPath          = "/etc/kubeedge/ca/rootCA.crt"
)

// AttestationData is the first message, sent by the agent.
type AttestationData struct {
	// Version is ProtocolVersion.
	Version int `json:"version"`
	// Certificates is the node certificate chain in DER, leaf first. The
	// KubeEdge root CA may be omitted; the server has it.
	Certificates [][]byte `json:"certificates"`
}

// Challenge is sent by the server after the chain verified.
type Challenge struct {
	// Version is ProtocolVersion.
	Version int `json:"version"`
	// Nonce is NonceSize fresh random bytes.
	Nonce []byte `json:"nonce"`
}

// ChallengeResponse is the agent's answer to a Challenge.
type ChallengeResponse struct {
	// Version is ProtocolVersion.
	Version int `json:"version"`
	// Challenge echoes the server's nonce, so a response to another
	// exchange is recognised as such.
	Challenge []byte `json:"challenge"`
	// Nonce is NonceSize fresh random bytes chosen by the agent.
	Nonce []byte `json:"nonce"`
	// TimeUnixMilli is the agent's clock when it signed.
	TimeUnixMilli int64 `json:"time_unix_milli"`
	// Signature is made with the node key over SignedMessage (see Sign).
	Signature []byte `json:"signature"`
}

// Marshal encodes v as JSON.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("kubeedge: %w", err)
	}
	return b, nil
}

// DecodeAttestationData strictly decodes and checks an AttestationData: the
// size, the version, and the number and sizes of the certificates. It does not
// parse the certificates.
func DecodeAttestationData(b []byte) (*AttestationData, error) {
	if len(b) > MaxPayloadBytes {
		return nil, fmt.Errorf("kubeedge: attestation payload is %d bytes, over the %d byte limit", len(b), MaxPayloadBytes)
	}
	var d AttestationData
	if err := decodeStrict(b, &d); err != nil {
		return nil, fmt.Errorf("kubeedge: malformed attestation payload: %w", err)
	}
	if d.Version != ProtocolVersion {
		return nil, fmt.Errorf("kubeedge: unsupported attestation payload version %d (want %d)", d.Version, ProtocolVersion)
	}
	switch n := len(d.Certificates); {
	case n == 0:
		return nil, errors.New("kubeedge: attestation payload holds no certificate")
	case n > MaxCertificates:
		return nil, fmt.Errorf("kubeedge: attestation payload holds %d certificates, over the limit of %d", n, MaxCertificates)
	}
	for i, c := range d.Certificates {
		switch {
		case len(c) == 0:
			return nil, fmt.Errorf("kubeedge: certificate %d is empty", i)
		case len(c) > MaxCertificateBytes:
			return nil, fmt.Errorf("kubeedge: certificate %d is %d bytes, over the %d byte limit", i, len(c), MaxCertificateBytes)
		}
	}
	return &d, nil
}

// DecodeChallenge strictly decodes and checks a Challenge.
func DecodeChallenge(b []byte) (*Challenge, error) {
	if len(b) > MaxChallengeBytes {
		return nil, fmt.Errorf("kubeedge: challenge is %d bytes, over the %d byte limit", len(b), MaxChallengeBytes)
	}
	var c Challenge
	if err := decodeStrict(b, &c); err != nil {
		return nil, fmt.Errorf("kubeedge: malformed challenge: %w", err)
	}
	if c.Version != ProtocolVersion {
		return nil, fmt.Errorf("kubeedge: unsupported challenge version %d (want %d)", c.Version, ProtocolVersion)
	}
	if len(c.Nonce) != NonceSize {
		return nil, fmt.Errorf("kubeedge: challenge nonce is %d bytes, want %d", len(c.Nonce), NonceSize)
	}
	return &c, nil
}

// DecodeChallengeResponse strictly decodes and checks a ChallengeResponse:
// the size, the version, and the sizes of its fields. It does not check the
// signature.
func DecodeChallengeResponse(b []byte) (*ChallengeResponse, error) {
	if len(b) > MaxChallengeResponseBytes {
		return nil, fmt.Errorf("kubeedge: challenge response is %d bytes, over the %d byte limit", len(b), MaxChallengeResponseBytes)
	}
	var r ChallengeResponse
	if err := decodeStrict(b, &r); err != nil {
		return nil, fmt.Errorf("kubeedge: malformed challenge response: %w", err)
	}
	switch {
	case r.Version != ProtocolVersion:
		return nil, fmt.Errorf("kubeedge: unsupported challenge response version %d (want %d)", r.Version, ProtocolVersion)
	case len(r.Challenge) != NonceSize:
		return nil, fmt.Errorf("kubeedge: challenge response echoes a %d byte challenge, want %d", len(r.Challenge), NonceSize)
	case len(r.Nonce) != NonceSize:
		return nil, fmt.Errorf("kubeedge: challenge response nonce is %d bytes, want %d", len(r.Nonce), NonceSize)
	case len(r.Signature) == 0:
		return nil, errors.New("kubeedge: challenge response has no signature")
	case len(r.Signature) > MaxSignatureBytes:
		return nil, fmt.Errorf("kubeedge: challenge response signature is %d bytes, over the %d byte limit", len(r.Signature), MaxSignatureBytes)
	case r.TimeUnixMilli <= 0:
		return nil, errors.New("kubeedge: challenge response has no time")
	}
	return &r, nil
}

// decodeStrict decodes one JSON object into v, rejecting unknown fields,
// a non-object top level and trailing data. It is json.Unmarshal (which
// already rejects invalid JSON and trailing data) followed by a check of the
// top-level keys against the fields of v: cheaper than a json.Decoder with
// DisallowUnknownFields, whose incremental scanner costs about 5 % of a whole
// attestation.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty input")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	return checkKeys(b, fieldsOf(v))
}

// fieldsOf lists the JSON names of the message types of this package.
func fieldsOf(v any) []string {
	switch v.(type) {
	case *AttestationData:
		return []string{"version", "certificates"}
	case *Challenge:
		return []string{"version", "nonce"}
	case *ChallengeResponse:
		return []string{"version", "challenge", "nonce", "time_unix_milli", "signature"}
	}
	return nil
}

// checkKeys walks b, valid JSON as json.Unmarshal established, and fails on
// a top-level object key that is not in allowed (compared as encoding/json
// matches fields: exactly or case-insensitively). Keys with escape
// sequences are refused rather than unescaped.
func checkKeys(b []byte, allowed []string) error {
	depth := 0
	expectKey := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{':
			depth++
			expectKey = depth == 1
		case '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case ':':
			expectKey = false
		case '"':
			end := i + 1
			escaped := false
			for end < len(b) && b[end] != '"' {
				if b[end] == '\\' {
					escaped = true
					end++
				}
				end++
			}
			if end >= len(b) {
				return errors.New("unterminated string")
			}
			if depth == 1 && expectKey {
				key := string(b[i+1 : end])
				if escaped || !knownKey(key, allowed) {
					return fmt.Errorf("json: unknown field %q", key)
				}
				expectKey = false
			}
			i = end
		}
	}
	return nil
}

func knownKey(key string, allowed []string) bool {
	for _, a := range allowed {
		if key == a || strings.EqualFold(key, a) {
			return true
		}
	}
	return false
}
