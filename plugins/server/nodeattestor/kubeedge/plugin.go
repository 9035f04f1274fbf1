package kubeedge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	nodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/nodeattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
