package kubeedge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// signedMessageContext separates this signature from any other use of the
// node key (for example its TLS client signatures towards cloudcore).
const signedMessageContext = "edgeid kubeedge node attestation v1\x00"

// MinRSABits is the smallest RSA node key accepted.
const MinRSABits = 2048

// SignedMessage returns the bytes the agent signs and the server verifies:
// a fixed context string, the trust domain (length-prefixed), the server's
// nonce, the agent's nonce and the agent's time in Unix milliseconds.
//
// Binding the trust domain keeps a server of another trust domain from
// relaying its challenge to the agent; the server's nonce makes every
// exchange unique, so a captured response cannot be replayed.
func SignedMessage(trustDomain string, challenge, agentNonce []byte, timeUnixMilli int64) []byte {
	msg := make([]byte, 0, len(signedMessageContext)+4+len(trustDomain)+len(challenge)+len(agentNonce)+8)
	msg = append(msg, signedMessageContext...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(trustDomain)))
	msg = append(msg, trustDomain...)
	msg = append(msg, challenge...)
	msg = append(msg, agentNonce...)
	msg = binary.BigEndian.AppendUint64(msg, uint64(timeUnixMilli))
	return msg
}

// Sign signs msg with the node key: ECDSA (ASN.1 signature, SHA-256 on
// P-256, SHA-384 on P-384, SHA-512 on P-521) or RSA-PSS (SHA-256, salt as
// long as the hash). randReader may be nil for crypto/rand.
func Sign(randReader io.Reader, signer crypto.Signer, msg []byte) ([]byte, error) {
	if randReader == nil {
		randReader = rand.Reader
	}
	h, opts, err := signatureHash(signer.Public())
	if err != nil {
		return nil, err
	}
	digest := digestOf(h, msg)
	sig, err := signer.Sign(randReader, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("kubeedge: unable to sign challenge: %w", err)
	}
	return sig, nil
}

// Verify checks a signature made by Sign with the private key of pub.
func Verify(pub crypto.PublicKey, msg, sig []byte) error {
	h, _, err := signatureHash(pub)
	if err != nil {
		return err
	}
	digest := digestOf(h, msg)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("kubeedge: ecdsa signature does not verify")
		}
	case *rsa.PublicKey:
		if err := rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}); err != nil {
			return fmt.Errorf("kubeedge: rsa-pss signature does not verify: %w", err)
		}
	}
	return nil
}

// CheckPublicKey reports whether pub is a node key type this protocol
// supports: ECDSA on P-256, P-384 or P-521, or RSA of at least MinRSABits.
func CheckPublicKey(pub crypto.PublicKey) error {
	_, _, err := signatureHash(pub)
	return err
}

func signatureHash(pub crypto.PublicKey) (crypto.Hash, crypto.SignerOpts, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return 0, nil, errors.New("kubeedge: ecdsa key has no curve")
		}
		switch k.Curve {
		case elliptic.P256():
			return crypto.SHA256, crypto.SHA256, nil
		case elliptic.P384():
			return crypto.SHA384, crypto.SHA384, nil
		case elliptic.P521():
			return crypto.SHA512, crypto.SHA512, nil
		}
		return 0, nil, fmt.Errorf("kubeedge: unsupported ecdsa curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return 0, nil, errors.New("kubeedge: rsa key has no modulus")
		}
		if bits := k.N.BitLen(); bits < MinRSABits {
			return 0, nil, fmt.Errorf("kubeedge: rsa key of %d bits is under the %d bit minimum", bits, MinRSABits)
		}
		return crypto.SHA256, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, nil
	default:
		return 0, nil, fmt.Errorf("kubeedge: unsupported node key type %T (want ecdsa or rsa)", pub)
	}
}

func digestOf(h crypto.Hash, msg []byte) []byte {
	hh := h.New()
	hh.Write(msg)
	return hh.Sum(nil)
}
