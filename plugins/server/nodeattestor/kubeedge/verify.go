package kubeedge

import (
	"bytes"
	"crypto/x509"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wire "github.com/edgeid/edgeid/plugins/common/kubeedge"
)

// verified is what chain verification learned about the node.
type verified struct {
	leaf          *x509.Certificate
	nodeName      string
	serial        string
	caFingerprint string
	// notAfter is the earliest NotAfter of the verified chain.
	notAfter time.Time
}

func (v *verified) selectors(cluster string) []string {
	return []string{
		"cluster:" + cluster,
		"node_name:" + v.nodeName,
		"ca_fingerprint:" + v.caFingerprint,
		"cert_serial:" + v.serial,
	}
}

// verifyCached verifies the DER chain of a payload, or takes the result of
// an earlier verification of exactly the same chain against the same CA
// bundle while it is still within its validity. Agents re-attest with the
// same certificate at every SVID renewal, so in steady state most
// attestations skip certificate parsing and chain verification; proof of
// possession, the deny lists and the Kubernetes check still run every time.
func (st *state) verifyCached(ders [][]byte, now time.Time) (*verified, error) {
	bundle, err := st.bundle.current()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "unable to load KubeEdge CA bundle: %v", err)
	}
	var key [32]byte
	if st.chains.enabled() {
		key = chainKey(ders)
		if v, ok := st.chains.get(key, bundle, now); ok {
			return v, st.checkDenyLists(v)
		}
	}
	chain, err := parseChain(ders)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	v, err := st.verifyLeafAndChain(bundle, chain, now)
	if err != nil {
		return nil, err
	}
	if st.chains.enabled() {
		st.chains.put(key, bundle, v)
	}
	return v, st.checkDenyLists(v)
}

// verifyChain checks the leaf and its chain against the current bundle,
// and the deny lists, without the cache.
func (st *state) verifyChain(chain []*x509.Certificate, now time.Time) (*verified, error) {
	bundle, err := st.bundle.current()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "unable to load KubeEdge CA bundle: %v", err)
	}
	v, err := st.verifyLeafAndChain(bundle, chain, now)
	if err != nil {
		return nil, err
	}
	return v, st.checkDenyLists(v)
}

// verifyLeafAndChain checks the leaf (not a CA, validity, EKU, key usage,
// key type, subject) and its chain to a CA of bundle.
func (st *state) verifyLeafAndChain(bundle *loadedBundle, chain []*x509.Certificate, now time.Time) (*verified, error) {
	leaf := chain[0]
	switch {
	case leaf.IsCA:
		return nil, status.Error(codes.PermissionDenied, "node certificate is a CA certificate")
	case now.Before(leaf.NotBefore):
		return nil, status.Errorf(codes.PermissionDenied, "node certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return nil, status.Errorf(codes.PermissionDenied, "node certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth):
		return nil, status.Error(codes.PermissionDenied, "node certificate lacks the client authentication extended key usage")
	case leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return nil, status.Error(codes.PermissionDenied, "node certificate key usage does not allow digital signatures")
	}
	if err := wire.CheckPublicKey(leaf.PublicKey); err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "node certificate key is not supported: %v", err)
	}
	nodeName, err := st.config.nodeNameOf(leaf)
	if err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         bundle.pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return nil, status.Errorf(codes.PermissionDenied, "node certificate is not signed by a configured KubeEdge CA: %v", err)
		}
		return nil, status.Errorf(codes.PermissionDenied, "node certificate chain verification failed: %v", err)
	}
	root := chains[0][len(chains[0])-1]
	notAfter := leaf.NotAfter
	for _, c := range chains[0] {
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	return &verified{leaf: leaf, nodeName: nodeName, serial: serialHex(leaf), caFingerprint: bundle.fingerprint(root), notAfter: notAfter}, nil
}

// checkDenyLists refuses denied node names and certificate serials, from
// the configuration and from deny_list_file (checked for changes first).
func (st *state) checkDenyLists(v *verified) error {
	if st.config.denyNodeNames[v.nodeName] {
		return status.Errorf(codes.PermissionDenied, "node %q is on the deny list", v.nodeName)
	}
	if st.config.denySerials[v.serial] {
		return status.Errorf(codes.PermissionDenied, "node certificate serial %s is on the deny list", v.serial)
	}
	if st.denyFile == nil {
		return nil
	}
	list := st.denyFile.current()
	if line, ok := list.nodes[v.nodeName]; ok {
		return status.Errorf(codes.PermissionDenied, "node %q is on the deny list (deny_list_file line %d)", v.nodeName, line)
	}
	if line, ok := list.serials[v.serial]; ok {
		return status.Errorf(codes.PermissionDenied, "node certificate serial %s is on the deny list (deny_list_file line %d)", v.serial, line)
	}
	return nil
}

// nodeNameOf extracts the node name from the leaf's subject.
func (cfg *configuration) nodeNameOf(leaf *x509.Certificate) (string, error) {
	cn := leaf.Subject.CommonName
	if cn == legacyCommonName {
		return "", status.Errorf(codes.PermissionDenied, "node certificate has the legacy KubeEdge subject CN=%s, which names no node; rotate the node certificate with a current edgecore", legacyCommonName)
	}
	if len(cfg.organizations) > 0 && !slices.ContainsFunc(leaf.Subject.Organization, func(o string) bool { return slices.Contains(cfg.organizations, o) }) {
		return "", status.Errorf(codes.PermissionDenied, "node certificate subject organization %q includes none of %q", leaf.Subject.Organization, cfg.organizations)
	}
	m := cfg.cnPattern.FindStringSubmatch(cn)
	if m == nil {
		return "", status.Errorf(codes.PermissionDenied, "node certificate common name %q does not match common_name_pattern %q", cn, cfg.cnPattern.String())
	}
	name := m[cfg.nodeNameIndex]
	if !validNodeName(name) {
		return "", status.Errorf(codes.PermissionDenied, "node certificate names %q, which is not a valid Kubernetes node name", name)
	}
	return name, nil
}

// verifyChallengeResponse checks the agent's answer to nonce.
func (st *state) verifyChallengeResponse(leaf *x509.Certificate, nonce, raw []byte, sentAt, now time.Time) error {
	resp, err := wire.DecodeChallengeResponse(raw)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	if !bytes.Equal(resp.Challenge, nonce) {
		return status.Error(codes.PermissionDenied, "challenge response answers another challenge (replayed or stale response)")
	}
	if elapsed := now.Sub(sentAt); elapsed > st.config.challengeTimeout {
		return status.Errorf(codes.PermissionDenied, "challenge response came %s after the challenge, over challenge_timeout %s", elapsed.Round(time.Millisecond), st.config.challengeTimeout)
	}
	agentTime := time.UnixMilli(resp.TimeUnixMilli)
	if skew := agentTime.Sub(now).Abs(); skew > st.config.maxClockSkew {
		return status.Errorf(codes.PermissionDenied, "challenge response time %s is %s away from the server's clock, over max_clock_skew %s", agentTime.UTC().Format(time.RFC3339), skew.Round(time.Second), st.config.maxClockSkew)
	}
	msg := wire.SignedMessage(st.config.trustDomain.Name(), nonce, resp.Nonce, resp.TimeUnixMilli)
	if err := wire.Verify(leaf.PublicKey, msg, resp.Signature); err != nil {
		return status.Errorf(codes.PermissionDenied, "challenge response signature does not verify with the node certificate key: %v", err)
	}
	return nil
}
