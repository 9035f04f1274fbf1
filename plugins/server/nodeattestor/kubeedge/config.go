package kubeedge

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/edgeid/edgeid/plugins/common/pluginconf"
)

// Defaults for the server configuration.
const (
	// DefaultCommonNamePattern matches the subject CN edgecore requests,
	// capturing the node name.
	DefaultCommonNamePattern = `^system:node:(?P<node_name>.+)$`
	// DefaultOrganization is the subject O edgecore requests.
	DefaultOrganization = "system:nodes"
	// DefaultEdgeNodeLabel is the label every KubeEdge edge node carries.
	DefaultEdgeNodeLabel = "node-role.kubernetes.io/edge"
	// DefaultMaxClockSkew bounds the difference between the agent's clock in
	// its challenge response and the server's clock.
	DefaultMaxClockSkew = 5 * time.Minute
	// DefaultChallengeTimeout bounds the time between sending the challenge
	// and receiving the response.
	DefaultChallengeTimeout = time.Minute
	// DefaultKubernetesTimeout bounds one request to the Kubernetes API.
	DefaultKubernetesTimeout = 5 * time.Second
	// DefaultNodeCheckMaxStaleness is how long the last successful Node
	// check of a node stands in for a new one while the API server cannot
	// be reached.
	DefaultNodeCheckMaxStaleness = time.Hour
	// DefaultDenyListCheckInterval is how often deny_list_file is checked
	// for changes when no agent attests (every attestation checks it too).
	DefaultDenyListCheckInterval = 5 * time.Second
	// legacyCommonName is the CN of pre-1.18 KubeEdge edge certificates.
	legacyCommonName = "kubeedge.io"
	nodeNameGroup    = "node_name"
)

// Kubernetes check modes.
const (
	KubernetesCheckAuto     = "auto"
	KubernetesCheckRequired = "required"
	KubernetesCheckDisabled = "disabled"
)

// Config is the plugin_data of NodeAttestor "kubeedge" on the server.
type Config struct {
	// Cluster names the KubeEdge cluster; it appears in the agent ID and in
	// the kubeedge:cluster selector. Required.
	Cluster string `hcl:"cluster,optional"`
	// CABundlePath is a PEM file with one or more KubeEdge CA certificates.
	CABundlePath string `hcl:"ca_bundle_path,optional"`
	// CABundlePaths lists more such files (for CA rotation).
	CABundlePaths []string `hcl:"ca_bundle_paths,optional"`
	// CommonNamePattern is a regular expression the subject CN must match
	// in full; its named group node_name captures the node name.
	CommonNamePattern string `hcl:"common_name_pattern,optional"`
	// Organizations lists subject O values; the certificate must carry one
	// of them. Default ["system:nodes"]; an empty list disables the check.
	Organizations *[]string `hcl:"organizations,optional"`
	// DenyNodeNames bans node names (Kubernetes Node names, compared
	// lowercase).
	DenyNodeNames []string `hcl:"deny_node_names,optional"`
	// DenyCertSerials bans certificate serial numbers (hex, colons allowed).
	DenyCertSerials []string `hcl:"deny_cert_serials,optional"`
	// DenyListFile is a file of more deny entries ("node <name>",
	// "serial <hex>"), re-read when it changes, without a restart.
	DenyListFile string `hcl:"deny_list_file,optional"`
	// DenyListCheckInterval is how often DenyListFile is checked for
	// changes in the background, e.g. "5s"; attestations check it too.
	DenyListCheckInterval string `hcl:"deny_list_check_interval,optional"`
	// MaxClockSkew bounds the agent's clock skew, e.g. "5m".
	MaxClockSkew string `hcl:"max_clock_skew,optional"`
	// ChallengeTimeout bounds the challenge round trip, e.g. "1m".
	ChallengeTimeout string `hcl:"challenge_timeout,optional"`

	// ChainCacheSize bounds the cache of verified certificate chains used
	// when an agent re-attests with the same certificate; 0 disables it.
	// Default 16384.
	ChainCacheSize *int `hcl:"chain_cache_size,optional"`

	// KubernetesCheck is "auto" (the default: "required" when kubeconfig
	// is set or in-cluster credentials exist, off with a warning
	// otherwise), "required" or "disabled".
	KubernetesCheck string `hcl:"kubernetes_check,optional"`
	// Kubeconfig is a kubeconfig file for the Kubernetes Node check.
	Kubeconfig string `hcl:"kubeconfig,optional"`
	// KubeContext picks a context of Kubeconfig; default current-context.
	KubeContext string `hcl:"kube_context,optional"`
	// EdgeNodeLabel is the label the Node must carry.
	EdgeNodeLabel string `hcl:"edge_node_label,optional"`
	// EdgeNodeLabelValue is the value that label must have (default "").
	EdgeNodeLabelValue string `hcl:"edge_node_label_value,optional"`
	// KubernetesTimeout bounds one API request, e.g. "5s".
	KubernetesTimeout string `hcl:"kubernetes_timeout,optional"`
	// NodeCheckMaxStaleness is how long a node's last successful Node
	// check may stand in for a new one while the API server cannot be
	// reached, e.g. "1h"; "0s" turns this off.
	NodeCheckMaxStaleness string `hcl:"node_check_max_staleness,optional"`
}

// configuration is the validated Config with defaults applied.
type configuration struct {
	trustDomain      spiffeid.TrustDomain
	cluster          string
	caPaths          []string
	cnPattern        *regexp.Regexp
	nodeNameIndex    int
	organizations    []string
	denyNodeNames    map[string]bool
	denySerials      map[string]bool
	denyListFile     string
	denyListInterval time.Duration
	maxClockSkew     time.Duration
	challengeTimeout time.Duration
	chainCacheSize   int

	kubeMode           string
	kubeconfig         string
	kubeContext        string
	edgeNodeLabel      string
	edgeNodeLabelValue string
	kubeTimeout        time.Duration
	maxStaleness       time.Duration
}

// buildConfig builds the configuration of a Configure or Validate request.
func buildConfig(req pluginconf.Request) (*configuration, *pluginconf.Status) {
	return pluginconf.Build(req, new(Config))
}

// BuildConfig checks c and applies the defaults (see pluginconf.Builder),
// one area at a time, reporting every problem in the order of the keys in
// the plugin documentation.
func (c *Config) BuildConfig(core pluginconf.Core, s *pluginconf.Status) *configuration {
	core.RequireTrustDomain(s)
	out := &configuration{trustDomain: core.TrustDomain}
	c.buildIdentity(out, s)
	c.buildDenyLists(out, s)
	c.buildDurations(out, s)
	c.buildChainCache(out, s)
	c.buildKubernetesCheck(out, s)
	return out
}

// positiveDuration is the rule of the duration keys that must be positive.
func positiveDuration(def time.Duration) pluginconf.Duration {
	return pluginconf.Duration{Default: def, Want: `a positive duration such as "30s"`}
}

// buildIdentity checks what names a node: the cluster, the CA bundle, the
// subject CN pattern and organizations.
func (c *Config) buildIdentity(out *configuration, s *pluginconf.Status) {
	switch {
	case c.Cluster == "":
		s.ReportError("cluster is required")
	case !validPathSegment(c.Cluster):
		s.ReportErrorf("cluster %q must be a SPIFFE ID path segment (letters, digits, '.', '-', '_')", c.Cluster)
	}
	out.cluster = c.Cluster

	if c.CABundlePath != "" {
		out.caPaths = append(out.caPaths, c.CABundlePath)
	}
	out.caPaths = append(out.caPaths, c.CABundlePaths...)
	if len(out.caPaths) == 0 {
		s.ReportError("ca_bundle_path or ca_bundle_paths is required")
	}
	for _, p := range out.caPaths {
		if strings.TrimSpace(p) == "" {
			s.ReportError("ca_bundle_paths holds an empty path")
		}
	}

	pattern := c.CommonNamePattern
	if pattern == "" {
		pattern = DefaultCommonNamePattern
	}
	re, err := regexp.Compile(pattern)
	switch {
	case err != nil:
		s.ReportErrorf("common_name_pattern %q is not a valid regular expression: %v", pattern, err)
	case re.SubexpIndex(nodeNameGroup) < 0:
		s.ReportErrorf("common_name_pattern %q has no named group (?P<node_name>...)", pattern)
	default:
		// Anchor the pattern so it must match the whole CN.
		re = regexp.MustCompile(`^(?:` + pattern + `)$`)
		out.cnPattern = re
		out.nodeNameIndex = re.SubexpIndex(nodeNameGroup)
	}

	if c.Organizations == nil {
		out.organizations = []string{DefaultOrganization}
	} else {
		out.organizations = *c.Organizations
	}
}

// buildDenyLists checks the deny lists in the configuration and the
// deny_list_file settings (the file itself is read by Plugin.build).
func (c *Config) buildDenyLists(out *configuration, s *pluginconf.Status) {
	out.denyNodeNames = make(map[string]bool)
	for _, n := range c.DenyNodeNames {
		name, err := normalizeNodeName(n)
		if err != nil {
			s.ReportErrorf("deny_node_names: %v", err)
			continue
		}
		out.denyNodeNames[name] = true
	}
	out.denySerials = make(map[string]bool)
	for _, serial := range c.DenyCertSerials {
		norm, err := normalizeSerial(serial)
		if err != nil {
			s.ReportErrorf("deny_cert_serials: %v", err)
			continue
		}
		out.denySerials[norm] = true
	}

	out.denyListFile = c.DenyListFile
	if c.DenyListFile == "" && c.DenyListCheckInterval != "" {
		s.ReportError("deny_list_check_interval is set but deny_list_file is not")
	}
	out.denyListInterval = s.Duration("deny_list_check_interval", c.DenyListCheckInterval, positiveDuration(DefaultDenyListCheckInterval))
}

// buildDurations checks the time limits of an attestation and of the
// Kubernetes Node check.
func (c *Config) buildDurations(out *configuration, s *pluginconf.Status) {
	out.maxClockSkew = s.Duration("max_clock_skew", c.MaxClockSkew, positiveDuration(DefaultMaxClockSkew))
	out.challengeTimeout = s.Duration("challenge_timeout", c.ChallengeTimeout, positiveDuration(DefaultChallengeTimeout))
	out.kubeTimeout = s.Duration("kubernetes_timeout", c.KubernetesTimeout, positiveDuration(DefaultKubernetesTimeout))
	out.maxStaleness = s.Duration("node_check_max_staleness", c.NodeCheckMaxStaleness, pluginconf.Duration{
		Default:   DefaultNodeCheckMaxStaleness,
		AllowZero: true,
		Want:      `a duration such as "1h", or "0s" to turn it off`,
	})
}

// buildChainCache checks chain_cache_size.
func (c *Config) buildChainCache(out *configuration, s *pluginconf.Status) {
	out.chainCacheSize = chainCacheSize
	if c.ChainCacheSize != nil {
		if *c.ChainCacheSize < 0 {
			s.ReportErrorf("chain_cache_size %d must be 0 (off) or positive", *c.ChainCacheSize)
		}
		out.chainCacheSize = *c.ChainCacheSize
	}
}

// buildKubernetesCheck checks the mode of the Kubernetes Node check and
// the keys that only make sense with it.
func (c *Config) buildKubernetesCheck(out *configuration, s *pluginconf.Status) {
	out.kubeMode = c.KubernetesCheck
	if out.kubeMode == "" {
		out.kubeMode = KubernetesCheckAuto
	}
	switch out.kubeMode {
	case KubernetesCheckAuto, KubernetesCheckRequired:
	case KubernetesCheckDisabled:
		if c.Kubeconfig != "" {
			s.ReportErrorf("kubeconfig is set but kubernetes_check is %q", KubernetesCheckDisabled)
		}
		if c.NodeCheckMaxStaleness != "" {
			s.ReportErrorf("node_check_max_staleness is set but kubernetes_check is %q", KubernetesCheckDisabled)
		}
	default:
		s.ReportErrorf("kubernetes_check %q must be %q, %q or %q", c.KubernetesCheck, KubernetesCheckAuto, KubernetesCheckRequired, KubernetesCheckDisabled)
	}
	out.kubeconfig = c.Kubeconfig
	out.kubeContext = c.KubeContext
	if c.KubeContext != "" && c.Kubeconfig == "" {
		s.ReportError("kube_context is set but kubeconfig is not")
	}
	out.edgeNodeLabel = c.EdgeNodeLabel
	if out.edgeNodeLabel == "" {
		out.edgeNodeLabel = DefaultEdgeNodeLabel
	}
	out.edgeNodeLabelValue = c.EdgeNodeLabelValue
}

// normalizeSerial turns "0A:1b" or "a1B" into lowercase hex without leading
// zeros, the form of the kubeedge:cert_serial selector.
func normalizeSerial(s string) (string, error) {
	clean := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), ":", ""))
	n, ok := new(big.Int).SetString(clean, 16)
	if clean == "" || !ok || n.Sign() < 0 {
		return "", fmt.Errorf("serial %q is not a hexadecimal number", s)
	}
	return n.Text(16), nil
}

// serialHex renders a certificate serial as in normalizeSerial.
func serialHex(cert *x509.Certificate) string {
	if cert.SerialNumber == nil {
		return ""
	}
	return cert.SerialNumber.Text(16)
}

// validPathSegment reports whether s can be one SPIFFE ID path segment.
func validPathSegment(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 253 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// dns1123Subdomain is the syntax of a Kubernetes Node name.
var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// validNodeName reports whether s is a valid Kubernetes Node name.
func validNodeName(s string) bool {
	return len(s) <= 253 && dns1123Subdomain.MatchString(s)
}

// normalizeNodeName lowercases a deny-list node name and checks that it is
// a valid Kubernetes Node name, the rule the API server applies to Nodes
// (so a name that fails it could never match a node certificate).
func normalizeNodeName(s string) (string, error) {
	// ASCII only: strings.ToLower would turn the Kelvin sign into 'k'.
	name := strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
	if !validNodeName(name) {
		return "", fmt.Errorf("node name %q is not a valid Kubernetes node name (a DNS-1123 subdomain: at most 253 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)", s)
	}
	return name, nil
}
