package kubeedge

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	nodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/nodeattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgeid/edgeid/internal/pemutil"
	wire "github.com/edgeid/edgeid/plugins/common/kubeedge"
	"github.com/edgeid/edgeid/plugins/common/pluginconf"
)

var (
	_ nodeattestorv1.NodeAttestorServer = (*Plugin)(nil)
	_ configv1.ConfigServer             = (*Plugin)(nil)
	_ pluginsdk.NeedsLogger             = (*Plugin)(nil)
)

// hooks are the plugin's links to the clock, randomness and the OS, replaced
// by tests.
type hooks struct {
	now                func() time.Time
	rand               io.Reader
	getenv             func(string) string
	inClusterTokenPath string
	inClusterCAPath    string
}

// state is what Configure builds and Attest reads: the validated
// configuration, the CA bundle, the deny-list file, the Kubernetes client
// (nil when the Node check is off) and the caches.
type state struct {
	config *configuration
	bundle *caBundle
	// denyFile is deny_list_file; nil when not configured.
	denyFile *denyFile
	kube     nodeGetter
	// kubeSource says where the Node check's credentials come from:
	// "kubeconfig", "in-cluster", or "" when the check is off.
	kubeSource string
	chains     *chainCache
	nodeChecks *nodeCheckCache
	logger     hclog.Logger
	// stop ends the goroutines Configure started for this state.
	stop context.CancelFunc
}

// Plugin is the server side of NodeAttestor "kubeedge".
type Plugin struct {
	nodeattestorv1.UnimplementedNodeAttestorServer
	configv1.UnimplementedConfigServer

	hooks hooks

	mu     sync.RWMutex
	state  *state
	logger hclog.Logger
}

// New returns an unconfigured plugin.
func New() *Plugin {
	return &Plugin{
		hooks: hooks{
			now:                time.Now,
			rand:               rand.Reader,
			getenv:             os.Getenv,
			inClusterTokenPath: inClusterTokenPath,
			inClusterCAPath:    inClusterCAPath,
		},
		logger: hclog.NewNullLogger(),
	}
}

// SetLogger is called by the plugin framework with SPIRE's logger.
func (p *Plugin) SetLogger(logger hclog.Logger) {
	p.mu.Lock()
	p.logger = logger
	p.mu.Unlock()
}

// Messages for a configuration that leaves the Node check off; Configure
// logs them as warnings and Validate returns them as notes.
const (
	warnCheckOffAuto = "Kubernetes Node check is OFF: no kubeconfig is set and no in-cluster service account token exists. " +
		"A decommissioned node keeps attesting with its KubeEdge certificate (valid for 365 days) until the certificate expires or is denied. " +
		"Set kubeconfig (recommended), or set kubernetes_check = \"disabled\" to accept this risk"
	warnCheckDisabled = "Kubernetes Node check is disabled by configuration: " +
		"a decommissioned node keeps attesting with its KubeEdge certificate (valid for 365 days) until the certificate expires or is denied"
)

// Configure validates and applies the configuration atomically.
func (p *Plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	st, cfgStatus := p.build(req)
	if err := cfgStatus.Err(); err != nil {
		return nil, err
	}
	logger := st.logger
	ctx, cancel := context.WithCancel(context.Background())
	st.stop = cancel
	if st.denyFile != nil {
		st.denyFile.logger = logger
		go st.denyFile.watch(ctx, st.config.denyListInterval)
	}
	p.mu.Lock()
	old := p.state
	p.state = st
	p.mu.Unlock()
	if old != nil && old.stop != nil {
		old.stop()
	}
	switch {
	case st.kube != nil:
		logger.Info("Kubernetes Node check is on", "mode", KubernetesCheckRequired, "credentials", st.kubeSource, "cluster", st.config.cluster,
			"edge_node_label", st.config.edgeNodeLabel, "node_check_max_staleness", st.config.maxStaleness.String())
	case st.config.kubeMode == KubernetesCheckDisabled:
		logger.Warn(warnCheckDisabled, "cluster", st.config.cluster)
	default:
		logger.Warn(warnCheckOffAuto, "cluster", st.config.cluster, "in_cluster_token_path", p.hooks.inClusterTokenPath)
	}
	if st.denyFile != nil {
		list := st.denyFile.current()
		logger.Info("Deny list file loaded", "path", st.denyFile.path, "node_names", len(list.nodes), "cert_serials", len(list.serials),
			"check_interval", st.config.denyListInterval.String())
	}
	return &configv1.ConfigureResponse{}, nil
}

// Validate reports whether a configuration is usable, with every problem.
func (p *Plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	st, cfgStatus := p.build(req)
	switch {
	case st == nil:
	case st.kube != nil:
		cfgStatus.ReportInfof("the Kubernetes Node check is required (credentials: %s)", st.kubeSource)
	case st.config.kubeMode == KubernetesCheckDisabled:
		cfgStatus.ReportInfo(warnCheckDisabled)
	default:
		cfgStatus.ReportInfo(warnCheckOffAuto)
	}
	return cfgStatus.ValidateResponse(), nil
}

// build builds the configuration of req and the state it needs: the CA
// bundle, the deny-list file and the Kubernetes client. The state is nil
// exactly when the returned Status has an error.
func (p *Plugin) build(req pluginconf.Request) (*state, *pluginconf.Status) {
	cfg, cfgStatus := buildConfig(req)
	if cfg == nil {
		return nil, cfgStatus
	}
	st, err := p.newState(cfg)
	if err != nil {
		cfgStatus.ReportError(err.Error())
		return nil, cfgStatus
	}
	return st, cfgStatus
}

// newState loads what cfg names. Its errors are configuration problems.
func (p *Plugin) newState(cfg *configuration) (*state, error) {
	bundle, err := loadCABundle(cfg.caPaths)
	if err != nil {
		return nil, err
	}
	p.mu.RLock()
	logger := p.logger
	p.mu.RUnlock()
	st := &state{
		config:     cfg,
		bundle:     bundle,
		chains:     newChainCache(cfg.chainCacheSize),
		nodeChecks: newNodeCheckCache(nodeCheckCacheSize, cfg.maxStaleness),
		logger:     logger,
	}
	if cfg.denyListFile != "" {
		st.denyFile, err = loadDenyFile(cfg.denyListFile)
		if err != nil {
			return nil, fmt.Errorf("deny_list_file %s: %w", cfg.denyListFile, err)
		}
	}
	st.kube, st.kubeSource, err = p.newNodeGetter(cfg)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// newNodeGetter returns the client of the Kubernetes Node check, or nil
// when the check is off. The default ("auto") turns the check on, as
// "required", as soon as credentials exist: a kubeconfig, or the service
// account token of a pod. Only with neither is it off (Configure then
// warns).
func (p *Plugin) newNodeGetter(cfg *configuration) (nodeGetter, string, error) {
	switch {
	case cfg.kubeMode == KubernetesCheckDisabled:
	case cfg.kubeconfig != "":
		kc, err := newKubeClientFromKubeconfig(cfg.kubeconfig, cfg.kubeContext, cfg.kubeTimeout)
		if err != nil {
			return nil, "", fmt.Errorf("kubeconfig: %w", err)
		}
		return kc, "kubeconfig", nil
	case inClusterTokenExists(&p.hooks):
		kc, err := newInClusterKubeClient(&p.hooks, cfg.kubeTimeout)
		if err != nil {
			return nil, "", fmt.Errorf("the Kubernetes Node check is required because the in-cluster service account token %s exists, but the in-cluster credentials are unusable: %w; set kubeconfig, or kubernetes_check = %q to run without the check", p.hooks.inClusterTokenPath, err, KubernetesCheckDisabled)
		}
		return kc, "in-cluster", nil
	case cfg.kubeMode == KubernetesCheckRequired:
		return nil, "", errors.New(`kubernetes_check is "required" but neither kubeconfig nor in-cluster credentials are available`)
	}
	return nil, "", nil
}

func (p *Plugin) getState() (*state, hclog.Logger, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state == nil {
		return nil, p.logger, status.Error(codes.FailedPrecondition, "not configured")
	}
	return p.state, p.logger, nil
}

// Attest runs the challenge–response attestation of one agent.
func (p *Plugin) Attest(stream nodeattestorv1.NodeAttestor_AttestServer) error {
	st, logger, err := p.getState()
	if err != nil {
		return err
	}
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	payload := req.GetPayload()
	if payload == nil {
		return status.Error(codes.InvalidArgument, "expected an attestation payload")
	}
	ex, challenge, err := st.begin(payload, &p.hooks)
	if err != nil {
		logRefusal(logger, ex, err)
		return err
	}
	if err := stream.Send(&nodeattestorv1.AttestResponse{Response: &nodeattestorv1.AttestResponse_Challenge{Challenge: challenge}}); err != nil {
		return err
	}
	req, err = stream.Recv()
	if err != nil {
		return err
	}
	respBytes := req.GetChallengeResponse()
	if respBytes == nil {
		return status.Error(codes.InvalidArgument, "expected a challenge response")
	}
	res, err := ex.finish(stream.Context(), respBytes)
	if err != nil {
		logRefusal(logger, ex, err)
		return err
	}
	if logger.IsDebug() {
		// SPIRE logs every attestation itself; this adds what it cannot know.
		logger.Debug("Node attested", "agent_id", res.AgentID, "cert_serial", ex.v.serial, "ca_fingerprint", ex.v.caFingerprint)
	}
	return stream.Send(&nodeattestorv1.AttestResponse{
		Response: &nodeattestorv1.AttestResponse_AgentAttributes{
			AgentAttributes: &nodeattestorv1.AgentAttributes{
				SpiffeId:       res.AgentID,
				SelectorValues: res.Selectors,
				CanReattest:    true,
			},
		},
	})
}

// logRefusal logs a refused attestation, with the node's name, serial and
// CA when its certificate verified that far (ex.v set): SPIRE logs the
// error too, but not which certificate was refused.
func logRefusal(logger hclog.Logger, ex *exchange, err error) {
	reason := status.Convert(err).Message()
	if ex == nil || ex.v == nil {
		logger.Warn("Node attestation failed", "reason", reason)
		return
	}
	logger.Warn("Node attestation failed", "node_name", ex.v.nodeName, "cert_serial", ex.v.serial, "ca_fingerprint", ex.v.caFingerprint, "reason", reason)
}

// exchange is one attestation between its challenge and the response.
type exchange struct {
	st     *state
	hooks  *hooks
	v      *verified
	nonce  []byte
	sentAt time.Time
}

// Result is the outcome of a successful attestation.
type Result struct {
	// AgentID is spiffe://<td>/spire/agent/kubeedge/<cluster>/<node-name>.
	AgentID string
	// Selectors are the kubeedge selector values (without the type).
	Selectors []string
}

// begin parses and verifies the payload and returns the challenge to send.
// When the certificate verified but a deny list refuses it, the error
// comes with an exchange that holds only what was verified, for the log.
func (st *state) begin(payload []byte, h *hooks) (*exchange, []byte, error) {
	data, err := wire.DecodeAttestationData(payload)
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	v, err := st.verifyCached(data.Certificates, h.now())
	if err != nil {
		if v != nil {
			return &exchange{v: v}, nil, err
		}
		return nil, nil, err
	}
	// Proof of possession: a fresh nonce the agent signs with the node key.
	nonce := make([]byte, wire.NonceSize)
	if _, err := io.ReadFull(h.rand, nonce); err != nil {
		return nil, nil, status.Errorf(codes.Internal, "unable to generate challenge: %v", err)
	}
	challenge, err := wire.Marshal(&wire.Challenge{Version: wire.ProtocolVersion, Nonce: nonce})
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "unable to encode challenge: %v", err)
	}
	return &exchange{st: st, hooks: h, v: v, nonce: nonce, sentAt: h.now()}, challenge, nil
}

// finish verifies the challenge response, runs the Kubernetes Node check
// (only after proof of possession, so unauthenticated callers never reach
// the API server) and builds the agent ID and selectors.
func (ex *exchange) finish(ctx context.Context, response []byte) (*Result, error) {
	st := ex.st
	if err := st.verifyChallengeResponse(ex.v.leaf, ex.nonce, response, ex.sentAt, ex.hooks.now()); err != nil {
		return nil, err
	}
	selectors := ex.v.selectors(st.config.cluster)
	if st.kube != nil {
		extra, err := st.checkNode(ctx, ex.v.nodeName, ex.hooks.now)
		if err != nil {
			return nil, err
		}
		selectors = append(selectors, extra...)
	}
	id, err := spiffeid.FromSegments(st.config.trustDomain, "spire", "agent", wire.PluginName, st.config.cluster, ex.v.nodeName)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "unable to build agent ID: %v", err)
	}
	return &Result{AgentID: id.String(), Selectors: selectors}, nil
}

// ParseAttestationPayload decodes the agent's first message and parses its
// certificates. Every error is meant for an InvalidArgument status.
func ParseAttestationPayload(payload []byte) ([]*x509.Certificate, error) {
	data, err := wire.DecodeAttestationData(payload)
	if err != nil {
		return nil, err
	}
	return parseChain(data.Certificates)
}

// parseChain parses the DER certificates of a decoded payload.
func parseChain(ders [][]byte) ([]*x509.Certificate, error) {
	chain := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("kubeedge: malformed certificate %d: %w", i, err)
		}
		chain = append(chain, cert)
	}
	return chain, nil
}

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

// checkNode requires that the Node exists, carries the edge label with the
// configured value and is not being deleted. It returns the node_label and
// node_uid selectors.
//
// It fails closed. The one exception is an outage (unreachableError): then
// the node's last successful check stands in for a new one while it is at
// most node_check_max_staleness old. A definite "no" (404,
// deletionTimestamp, wrong label) refuses at once and forgets that check.
func (st *state) checkNode(ctx context.Context, name string, now func() time.Time) ([]string, error) {
	cfg := st.config
	ctx, cancel := context.WithTimeout(ctx, cfg.kubeTimeout)
	defer cancel()
	n, err := st.kube.GetNode(ctx, name)
	switch {
	case errors.Is(err, errNodeNotFound):
		st.nodeChecks.drop(name)
		return nil, status.Errorf(codes.PermissionDenied, "kubernetes node %q does not exist", name)
	case err != nil && isUnreachable(err):
		return st.lastGoodCheck(name, err, now())
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "unable to check kubernetes node %q: %v", name, err)
	case n.Metadata.DeletionTimestamp != nil:
		st.nodeChecks.drop(name)
		return nil, status.Errorf(codes.PermissionDenied, "kubernetes node %q is being deleted", name)
	}
	value, ok := n.Metadata.Labels[cfg.edgeNodeLabel]
	if !ok {
		st.nodeChecks.drop(name)
		return nil, status.Errorf(codes.PermissionDenied, "kubernetes node %q lacks the edge label %q", name, cfg.edgeNodeLabel)
	}
	if value != cfg.edgeNodeLabelValue {
		st.nodeChecks.drop(name)
		return nil, status.Errorf(codes.PermissionDenied, "kubernetes node %q has edge label %q=%q, want %q", name, cfg.edgeNodeLabel, value, cfg.edgeNodeLabelValue)
	}
	keys := make([]string, 0, len(n.Metadata.Labels))
	for k := range n.Metadata.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		out = append(out, "node_label:"+k+":"+n.Metadata.Labels[k])
	}
	if n.Metadata.UID != "" {
		out = append(out, "node_uid:"+n.Metadata.UID)
	}
	st.nodeChecks.put(name, nodeCheck{uid: n.Metadata.UID, selectors: out, at: now()})
	return out, nil
}

// lastGoodCheck decides an attestation while the API server cannot be
// reached (apiErr): it succeeds, with the selectors of the node's last
// successful check, if that check is at most node_check_max_staleness old,
// and fails closed (Unavailable) otherwise.
func (st *state) lastGoodCheck(name string, apiErr error, now time.Time) ([]string, error) {
	last, ok := st.nodeChecks.get(name)
	if !ok {
		return nil, status.Errorf(codes.Unavailable, "unable to check kubernetes node %q: %v", name, apiErr)
	}
	maxAge := st.config.maxStaleness
	age := now.Sub(last.at)
	if age > maxAge || age < 0 {
		return nil, status.Errorf(codes.Unavailable, "unable to check kubernetes node %q: %v; its last successful check, at %s (%s ago), is older than node_check_max_staleness %s",
			name, apiErr, last.at.UTC().Format(time.RFC3339), age.Round(time.Second), maxAge)
	}
	st.logger.Warn("Kubernetes API server unreachable; node attested on its last successful Node check", "node_name", name, "node_uid", last.uid,
		"checked_at", last.at.UTC().Format(time.RFC3339), "age", age.Round(time.Second).String(), "node_check_max_staleness", maxAge.String(), "error", apiErr.Error())
	return slices.Clone(last.selectors), nil
}

// caBundle holds the configured CA files and reloads them when one changes
// on disk, so an operator can add the next CA (or drop the old one) without
// restarting SPIRE.
type caBundle struct {
	paths []string
	// recheck is how often the files are stat'ed for changes; a change
	// takes effect at most this long after it is made.
	recheck time.Duration

	mu        sync.Mutex
	stamps    []fileStamp
	loaded    *loadedBundle
	checkedAt time.Time
}

// bundleRecheck is the default caBundle.recheck.
const bundleRecheck = time.Second

type fileStamp struct {
	modTime time.Time
	size    int64
}

type loadedBundle struct {
	pool *x509.CertPool
	cas  []*x509.Certificate
	fps  map[*x509.Certificate]string
}

// fingerprint returns the SHA-256 fingerprint of ca, precomputed for the
// bundle's CAs.
func (lb *loadedBundle) fingerprint(ca *x509.Certificate) string {
	if fp, ok := lb.fps[ca]; ok {
		return fp
	}
	return fingerprint(ca)
}

func loadCABundle(paths []string) (*caBundle, error) {
	b := &caBundle{paths: paths, recheck: bundleRecheck}
	if _, err := b.current(); err != nil {
		return nil, err
	}
	return b, nil
}

// current returns the bundle, re-reading the files when any changed. When a
// file is missing or broken it fails (closed) instead of using stale CAs.
func (b *caBundle) current() (*loadedBundle, error) {
	b.mu.Lock()
	if b.loaded != nil && time.Since(b.checkedAt) < b.recheck {
		lb := b.loaded
		b.mu.Unlock()
		return lb, nil
	}
	b.mu.Unlock()
	stamps := make([]fileStamp, len(b.paths))
	for i, p := range b.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("ca bundle: %w", err)
		}
		stamps[i] = fileStamp{modTime: fi.ModTime(), size: fi.Size()}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.loaded != nil && slices.Equal(stamps, b.stamps) {
		b.checkedAt = time.Now()
		return b.loaded, nil
	}
	lb := &loadedBundle{pool: x509.NewCertPool(), fps: make(map[*x509.Certificate]string)}
	for _, p := range b.paths {
		cas, err := readCAFile(p)
		if err != nil {
			return nil, err
		}
		for _, ca := range cas {
			lb.pool.AddCert(ca)
			lb.cas = append(lb.cas, ca)
			lb.fps[ca] = fingerprint(ca)
		}
	}
	b.loaded, b.stamps, b.checkedAt = lb, stamps, time.Now()
	return lb, nil
}

func readCAFile(path string) ([]*x509.Certificate, error) {
	raw, err := fsutil.ReadFileLimited(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("ca bundle: %w", err)
	}
	out, err := pemutil.ParseCertificates(raw)
	if err != nil {
		return nil, fmt.Errorf("ca bundle %s: %w", path, err)
	}
	for _, c := range out {
		if !c.IsCA {
			return nil, fmt.Errorf("ca bundle %s: certificate %q is not a CA", path, c.Subject.String())
		}
	}
	return out, nil
}
