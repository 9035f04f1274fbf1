package topology

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MaxFileBytes bounds the size of a topology file.
const MaxFileBytes = 4 << 20

// NestingFactor is how many times longer an upstream CA must live than
// what it signs. SPIRE prepares the next CA at half-life and activates it
// when 1/6 of the lifetime remains, so anything shorter than 6× leaves the
// downstream with a CA or SVID that outlives its issuer's active window.
const NestingFactor = 6

// Defaults applied to omitted keys.
const (
	DefaultCloudCATTL   = 7 * 24 * time.Hour
	DefaultCloudSVIDTTL = time.Hour
	DefaultSiteCATTL    = 24 * time.Hour
	DefaultSiteSVIDTTL  = time.Hour
	DefaultServerPort   = 8081
	DefaultKafkaPort    = 9093
	DefaultCluster      = "kubeedge"
)

// Kinds of workload.
const (
	KindDeepStream = "deepstream"
	KindEdgeHub    = "edgehub"
	KindEventBus   = "eventbus"
	KindApp        = "app"
)

// Error is one problem in a topology file, at a place in it.
type Error struct {
	Range hcl.Range
	Msg   string
}

func (e Error) Error() string {
	if e.Range.Filename == "" {
		return e.Msg
	}
	return fmt.Sprintf("%s:%d,%d: %s", e.Range.Filename, e.Range.Start.Line, e.Range.Start.Column, e.Msg)
}

// Errors is every problem found in a topology file, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return fmt.Sprintf("topology: %d error(s):\n  %s", len(es), strings.Join(lines, "\n  "))
}

// ParseFile reads and validates the topology file at path.
func ParseFile(path string) (*Topology, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if info.Size() > MaxFileBytes {
		return nil, fmt.Errorf("topology: %s is %d bytes, over the %d byte limit", path, info.Size(), MaxFileBytes)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return Parse(src, path)
}

// Parse validates the topology in src; filename names it in errors and
// relative paths in it resolve against its directory.
func Parse(src []byte, filename string) (*Topology, error) {
	if len(src) > MaxFileBytes {
		return nil, fmt.Errorf("topology: %s is %d bytes, over the %d byte limit", filename, len(src), MaxFileBytes)
	}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diagErrors(diags)
	}
	var f File
	if diags := gohcl.DecodeBody(file.Body, nil, &f); diags.HasErrors() {
		return nil, diagErrors(diags)
	}
	v := &validator{file: &f, filename: filename, workloadRanges: map[string]hcl.Range{}}
	top := v.validate(filename)
	if len(v.errs) > 0 {
		slices.SortStableFunc(v.errs, func(a, b Error) int {
			return a.Range.Start.Byte - b.Range.Start.Byte
		})
		return nil, v.errs
	}
	return top, nil
}

func diagErrors(diags hcl.Diagnostics) Errors {
	var errs Errors
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		e := Error{Msg: msg}
		if d.Subject != nil {
			e.Range = *d.Subject
		}
		errs = append(errs, e)
	}
	return errs
}

type validator struct {
	file *File
	errs Errors
	// ports maps "host:port" to where it was first claimed.
	ports map[string]portUse
	// filename is the file being validated.
	filename string
	// workloadUIDBase and workloadCount number the workloads' default
	// accounts; workloadRanges locate each workload ("site/name") for
	// account errors.
	workloadUIDBase int
	workloadCount   int
	workloadRanges  map[string]hcl.Range
}

type portUse struct {
	what string
	at   hcl.Range
}

func (v *validator) errorf(r hcl.Range, format string, args ...any) {
	v.errs = append(v.errs, Error{Range: r, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) duration(s string, def time.Duration, r hcl.Range, key string) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		v.errorf(r, "%s: %q is not a positive duration such as \"24h\"", key, s)
		return def
	}
	return d
}

func (v *validator) claimPort(host string, port int, what string, r hcl.Range) {
	if v.ports == nil {
		v.ports = map[string]portUse{}
	}
	if port < 1 || port > 65535 {
		v.errorf(r, "%s: port %d is out of range", what, port)
		return
	}
	key := host + ":" + strconv.Itoa(port)
	if prev, ok := v.ports[key]; ok {
		v.errorf(r, "port clash: %s and %s both use port %d on host %q (%s)", what, prev.what, port, host, rangeString(prev.at))
		return
	}
	v.ports[key] = portUse{what: what, at: r}
}

func rangeString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d,%d", r.Filename, r.Start.Line, r.Start.Column)
}

func (v *validator) nested(upstream, downstream time.Duration, upWhat, downWhat string, r hcl.Range) {
	if upstream < NestingFactor*downstream {
		v.errorf(r, "TTLs break nesting: %s (%s) must be at least %d × %s (%s), i.e. %s; SPIRE activates a new CA when 1/6 of its life remains",
			upWhat, upstream, NestingFactor, downWhat, downstream, NestingFactor*downstream)
	}
}

func (v *validator) validate(filename string) *Topology {
	f := v.file
	abs, err := filepath.Abs(filename)
	if err != nil {
		abs = filename
	}
	top := &Topology{Path: abs, Dir: filepath.Dir(abs)}

	if td, err := spiffeid.TrustDomainFromString(f.TrustDomain); err != nil {
		v.errorf(f.TrustDomainRange, "trust_domain: %v", err)
	} else {
		top.TrustDomain = td.Name()
	}

	top.Cloud = v.cloud(f.Cloud)
	top.Vault = v.vault(f.Vault, top.Cloud)
	top.KubeEdge = v.kubeedge(f.KubeEdge, top.Dir)
	top.Kafka = v.kafka(f.Kafka, top.Cloud)
	top.Users = v.users(f.Users)
	v.workloadUIDBase = DefaultWorkloadUIDBase
	if f.Users != nil && f.Users.WorkloadUIDBase != nil {
		v.workloadUIDBase = *f.Users.WorkloadUIDBase
		if v.workloadUIDBase < MinAccountUID || v.workloadUIDBase > MaxAccountUID {
			v.errorf(f.Users.WorkloadUIDBaseRange, "users.workload_uid_base %d is out of range (%d..%d)", v.workloadUIDBase, MinAccountUID, MaxAccountUID)
		}
	}

	sites := map[string]hcl.Range{}
	nodes := map[string]hcl.Range{}
	for _, sb := range f.Sites {
		if prev, ok := sites[sb.Name]; ok {
			v.errorf(sb.NameRange, "duplicate site %q (first defined at %s)", sb.Name, rangeString(prev))
			continue
		}
		sites[sb.Name] = sb.NameRange
		top.Sites = append(top.Sites, v.site(sb, top, nodes))
	}
	if len(f.Sites) == 0 {
		v.errorf(hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}, "no site blocks: a topology needs at least one edge site")
	}
	v.distinctUsers(top)
	for _, tb := range f.Tunnels {
		top.Tunnels = append(top.Tunnels, v.tunnel(tb, top))
	}
	seenTunnel := map[string]hcl.Range{}
	for _, tb := range f.Tunnels {
		if prev, ok := seenTunnel[tb.Name]; ok {
			v.errorf(tb.NameRange, "duplicate tunnel %q (first defined at %s)", tb.Name, rangeString(prev))
		}
		seenTunnel[tb.Name] = tb.NameRange
	}
	return top
}

// Default accounts (see UsersBlock). Numeric uids need no passwd entry.
const (
	DefaultControlUID      = 61000
	DefaultKafkaDemoUID    = 61001
	DefaultWorkloadUIDBase = 61100
	// MinAccountUID keeps edgeid's processes off root and the system
	// accounts; MaxAccountUID below the 32-bit "nobody" values.
	MinAccountUID = 1000
	MaxAccountUID = 1 << 30
)

func (v *validator) users(ub *UsersBlock) Users {
	if ub == nil {
		ub = &UsersBlock{}
	}
	return Users{
		Control:   v.user(ub.Control, DefaultControlUID, ub.ControlRange, "users.control"),
		KafkaDemo: v.user(ub.KafkaDemo, DefaultKafkaDemoUID, ub.KafkaDemoRange, "users.kafka_demo"),
	}
}

// user parses an account: a user name or a decimal uid.
func (v *validator) user(s string, def int, r hcl.Range, key string) User {
	if s == "" {
		return User{UID: def}
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < MinAccountUID || n > MaxAccountUID {
			v.errorf(r, "%s: uid %d is out of range (%d..%d): edgeid never runs a process as root or a system account", key, n, MinAccountUID, MaxAccountUID)
		}
		return User{UID: n}
	}
	if !validUserName(s) || s == "root" {
		v.errorf(r, "%s: %q is not a user name (lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 32) or a decimal uid", key, s)
	}
	return User{Name: s}
}

// distinctUsers checks that no two of the control plane, the demo broker
// and the workloads share an account: an account is what separates them.
func (v *validator) distinctUsers(top *Topology) {
	type owner struct {
		what string
		r    hcl.Range
	}
	seen := map[string]owner{}
	claim := func(u User, what string, r hcl.Range) {
		key := u.String()
		if prev, ok := seen[key]; ok {
			v.errorf(r, "%s runs as %s, like %s: every workload needs an account of its own", what, key, prev.what)
			return
		}
		seen[key] = owner{what, r}
	}
	claim(top.Users.Control, "the control plane (users.control)", rangeOr(v.usersRange(), v.fileRange()))
	if top.Kafka.Demo {
		claim(top.Users.KafkaDemo, "the demo Kafka broker (users.kafka_demo)", rangeOr(v.usersRange(), v.fileRange()))
	}
	for _, s := range top.Sites {
		for _, w := range s.Workloads {
			claim(w.User, fmt.Sprintf("workload %q of site %q", w.Name, s.Name), v.workloadRanges[s.Name+"/"+w.Name])
		}
	}
}

func (v *validator) usersRange() hcl.Range {
	if v.file.Users != nil {
		return v.file.Users.DefRange
	}
	return hcl.Range{}
}

func (v *validator) fileRange() hcl.Range {
	return hcl.Range{Filename: v.filename, Start: hcl.InitialPos, End: hcl.InitialPos}
}

func (v *validator) cloud(cb *CloudBlock) Cloud {
	if cb == nil {
		cb = &CloudBlock{}
	}
	c := Cloud{
		Servers:     cb.Servers,
		Datastore:   cb.Datastore,
		PostgresDSN: cb.PostgresDSN,
		CATTL:       v.duration(cb.CATTL, DefaultCloudCATTL, cb.CATTLRange, "cloud.ca_ttl"),
		X509SVIDTTL: v.duration(cb.X509SVIDTTL, DefaultCloudSVIDTTL, cb.X509SVIDTTLRange, "cloud.x509_svid_ttl"),
		Hosts:       cb.Hosts,
		Address:     cb.Address,
		Port:        cb.Port,
	}
	if c.Servers == 0 {
		c.Servers = 1
	}
	if c.Servers < 0 || c.Servers > 16 {
		v.errorf(cb.ServersRange, "cloud.servers: %d is out of range (1-16)", c.Servers)
		c.Servers = 1
	}
	switch c.Datastore {
	case "":
		c.Datastore = "sqlite"
	case "sqlite", "postgres":
	default:
		v.errorf(cb.DatastoreRange, "cloud.datastore: %q is not one of sqlite, postgres", c.Datastore)
	}
	if c.Servers > 1 && c.Datastore != "postgres" {
		v.errorf(cb.ServersRange, "cloud.servers = %d needs datastore = \"postgres\": HA SPIRE servers share one SQL datastore", c.Servers)
	}
	if c.Port == 0 {
		c.Port = DefaultServerPort
	}
	if len(c.Hosts) == 0 {
		for i := range c.Servers {
			if i == 0 {
				c.Hosts = append(c.Hosts, "cloud")
			} else {
				c.Hosts = append(c.Hosts, fmt.Sprintf("cloud-%d", i+1))
			}
		}
	} else if len(c.Hosts) != c.Servers {
		v.errorf(cb.DefRange, "cloud.hosts lists %d hosts for %d servers", len(c.Hosts), c.Servers)
	}
	for i, h := range c.Hosts {
		v.claimPort(h, c.Port, fmt.Sprintf("cloud server %d", i+1), rangeOr(cb.PortRange, cb.DefRange))
	}
	v.nested(c.CATTL, c.X509SVIDTTL, "cloud.ca_ttl", "cloud.x509_svid_ttl", rangeOr(cb.CATTLRange, cb.DefRange))
	return c
}

func (v *validator) vault(vb *VaultBlock, cloud Cloud) Vault {
	if vb == nil {
		vb = &VaultBlock{}
	}
	out := Vault{
		Address:      vb.Address,
		CACert:       vb.CACert,
		PKIMount:     orDefault(vb.PKIMount, "pki"),
		PKIIntMount:  orDefault(vb.PKIIntMount, "pki_int"),
		KVMount:      orDefault(vb.KVMount, "secret"),
		RoleIDFile:   vb.RoleIDFile,
		SecretIDFile: vb.SecretIDFile,
		Host:         vb.Host,
		DefRange:     vb.DefRange,
	}
	if out.Host == "" && len(cloud.Hosts) > 0 {
		out.Host = cloud.Hosts[0]
	}
	switch vb.Mode {
	case "", "managed":
		out.Managed = true
	case "external":
		if vb.Address == "" {
			v.errorf(vb.DefRange, "vault: mode \"external\" needs address")
		}
		if vb.RoleIDFile == "" || vb.SecretIDFile == "" {
			v.errorf(vb.DefRange, "vault: mode \"external\" needs role_id_file and secret_id_file (written by `edgeid bootstrap vault`)")
		}
	default:
		v.errorf(rangeOr(vb.ModeRange, vb.DefRange), "vault.mode: %q is not one of managed, external", vb.Mode)
	}
	if out.PKIMount == out.PKIIntMount {
		v.errorf(vb.DefRange, "vault: pki_mount and pki_int_mount are both %q; the root and the intermediate need their own mounts", out.PKIMount)
	}
	v.custodians(vb, &out)
	if vb.SealTransit != nil {
		if !out.Managed {
			v.errorf(vb.SealTransit.DefRange, "vault.seal_transit: only for a managed Vault; an external Vault's seal is its own configuration")
		}
		out.SealTransit = v.sealTransit(vb.SealTransit)
	}
	return out
}

// custodians validates unseal_custodians and unseal_threshold.
func (v *validator) custodians(vb *VaultBlock, out *Vault) {
	r := rangeOr(vb.UnsealCustodiansRange, vb.DefRange)
	if len(vb.UnsealCustodians) > 0 && !out.Managed {
		v.errorf(r, "vault.unseal_custodians: only for a managed Vault; an external Vault's key shares are kept by whoever runs it")
	}
	seen := map[string]int{}
	for i, c := range vb.UnsealCustodians {
		if _, err := age.ParseX25519Recipient(c); err != nil {
			v.errorf(r, "vault.unseal_custodians[%d]: %q is not an age recipient (age1...)", i, c)
			continue
		}
		if j, ok := seen[c]; ok {
			v.errorf(r, "vault.unseal_custodians[%d]: the same recipient as unseal_custodians[%d]; each custodian keeps one share", i, j)
			continue
		}
		seen[c] = i
	}
	n, t := len(vb.UnsealCustodians), vb.UnsealThreshold
	tr := rangeOr(vb.UnsealThresholdRange, vb.DefRange)
	switch {
	case n == 0 && vb.UnsealThresholdRange.Filename != "":
		v.errorf(tr, "vault.unseal_threshold: needs unseal_custodians")
	case n > 255:
		v.errorf(r, "vault.unseal_custodians: %d custodians; Vault makes at most 255 shares", n)
	case n > 0 && vb.UnsealThresholdRange.Filename == "":
		v.errorf(r, "vault.unseal_custodians: set unseal_threshold too: how many of the %d custodians must come together", n)
	case n > 0 && (t < 1 || t > n || (n > 1 && t < 2)):
		v.errorf(tr, "vault.unseal_threshold: must be between 2 and the number of unseal_custodians (%d) (1 only with a single custodian), got %d", n, t)
	}
	out.UnsealCustodians, out.UnsealThreshold = vb.UnsealCustodians, t
}

// transitKeyName is what Vault accepts as a Transit key name.
var transitKeyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// sealTransit validates the seal_transit block. Its files live on the
// Vault host, so they must be absolute; the runner on that host checks
// them.
func (v *validator) sealTransit(sb *SealTransitBlock) *SealTransit {
	st := &SealTransit{
		Address:        strings.TrimRight(sb.Address, "/"),
		Mount:          strings.Trim(orDefault(sb.Mount, "transit"), "/"),
		KeyName:        sb.KeyName,
		TokenFile:      sb.TokenFile,
		CACert:         sb.CACert,
		DisableRenewal: sb.DisableRenewal,
	}
	u, err := url.Parse(st.Address)
	switch {
	case st.Address == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/"):
		v.errorf(sb.AddressRange, "vault.seal_transit.address: %q is not a Vault address such as \"https://vault-unsealer:8200\"", sb.Address)
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		v.errorf(sb.AddressRange, "vault.seal_transit.address: %q would send Vault's seal token in clear text; use https:// (http:// only to a loopback address)", sb.Address)
	case u.Scheme == "http" && st.CACert != "":
		v.errorf(sb.CACertRange, "vault.seal_transit.ca_cert: the address is http://; a CA certificate needs https://")
	}
	if !mountPath.MatchString(st.Mount) {
		v.errorf(rangeOr(sb.MountRange, sb.DefRange), "vault.seal_transit.mount: %q is not a Vault mount path", sb.Mount)
	}
	if !transitKeyName.MatchString(st.KeyName) {
		v.errorf(sb.KeyNameRange, "vault.seal_transit.key_name: %q is not a Transit key name", sb.KeyName)
	}
	if !filepath.IsAbs(st.TokenFile) {
		v.errorf(sb.TokenFileRange, "vault.seal_transit.token_file: must be an absolute path on the Vault host, got %q", sb.TokenFile)
	}
	if st.CACert != "" && !filepath.IsAbs(st.CACert) {
		v.errorf(sb.CACertRange, "vault.seal_transit.ca_cert: must be an absolute path on the Vault host, got %q", sb.CACert)
	}
	return st
}

// mountPath is what Vault accepts as a mount path (without slashes at the
// ends).
var mountPath = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}){0,4}$`)

// loopbackHost reports whether host is localhost or a loopback IP.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) kubeedge(kb *KubeEdgeBlock, dir string) KubeEdge {
	if kb == nil {
		kb = &KubeEdgeBlock{}
	}
	k := KubeEdge{
		Cluster:      orDefault(kb.Cluster, DefaultCluster),
		CACert:       resolve(dir, kb.CACert),
		NodeCertPath: orDefault(kb.NodeCertPath, "/etc/kubeedge/certs/server.crt"),
		NodeKeyPath:  orDefault(kb.NodeKeyPath, "/etc/kubeedge/certs/server.key"),
		Kubeconfig:   kb.Kubeconfig,
	}
	if strings.ContainsAny(k.Cluster, "/ ") {
		v.errorf(kb.DefRange, "kubeedge.cluster: %q may not contain '/' or spaces (it is a path segment of agent IDs)", k.Cluster)
	}
	if k.CACert != "" {
		if _, err := os.Stat(k.CACert); err != nil {
			v.errorf(kb.DefRange, "kubeedge.ca_cert: %v", err)
		}
	}
	// The kubeconfig is read by the SPIRE servers on their hosts, not by
	// edgeid here, so it is neither resolved against the topology's
	// directory nor looked for on this machine.
	switch kc := k.Kubeconfig; {
	case kc == "":
	case strings.ContainsFunc(kc, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		v.errorf(rangeOr(kb.KubeconfigRange, kb.DefRange), "kubeedge.kubeconfig: %q contains a control character", kc)
	case !filepath.IsAbs(kc):
		v.errorf(rangeOr(kb.KubeconfigRange, kb.DefRange), "kubeedge.kubeconfig: %q must be an absolute path: it is read by the SPIRE servers on their hosts", kc)
	case strings.HasSuffix(kc, "/"):
		v.errorf(rangeOr(kb.KubeconfigRange, kb.DefRange), "kubeedge.kubeconfig: %q names a directory, not a file", kc)
	}
	return k
}

func (v *validator) kafka(kb *KafkaBlock, cloud Cloud) Kafka {
	if kb == nil {
		kb = &KafkaBlock{}
	}
	k := Kafka{
		Brokers:                kb.Brokers,
		Port:                   kb.Port,
		EndpointIdentification: kb.EndpointIdentification,
		AllowedSPIFFEIDs:       kb.AllowedSPIFFEIDs,
	}
	switch kb.Mode {
	case "", "demo":
		k.Demo = true
		if k.Port == 0 {
			k.Port = DefaultKafkaPort
		}
		if len(cloud.Hosts) > 0 {
			v.claimPort(cloud.Hosts[0], k.Port, "the demo Kafka broker", rangeOr(kb.PortRange, kb.DefRange))
		}
		if k.EndpointIdentification == "" {
			// The demo broker advertises 127.0.0.1 and SPIRE cannot put
			// IP SANs in SVIDs, so hostname checks cannot pass; chain
			// verification against the bundle still applies.
			k.EndpointIdentification = "none"
		}
	case "external":
		if len(k.Brokers) == 0 {
			v.errorf(kb.DefRange, "kafka: mode \"external\" needs brokers")
		}
		if k.EndpointIdentification == "" {
			k.EndpointIdentification = "https"
		}
	default:
		v.errorf(kb.ModeRange, "kafka.mode: %q is not one of demo, external", kb.Mode)
	}
	for _, b := range k.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			v.errorf(kb.DefRange, "kafka.brokers: %q is not host:port", b)
		}
	}
	switch k.EndpointIdentification {
	case "", "none", "https":
	default:
		v.errorf(kb.DefRange, "kafka.endpoint_identification: %q is not one of https, none", k.EndpointIdentification)
	}
	for _, id := range k.AllowedSPIFFEIDs {
		if _, err := spiffeid.FromString(id); err != nil {
			v.errorf(kb.DefRange, "kafka.allowed_spiffe_ids: %q: %v", id, err)
		}
	}
	return k
}

func (v *validator) site(sb *SiteBlock, top *Topology, allNodes map[string]hcl.Range) Site {
	s := Site{
		Name:        sb.Name,
		CATTL:       v.duration(sb.CATTL, DefaultSiteCATTL, sb.CATTLRange, "site.ca_ttl"),
		X509SVIDTTL: v.duration(sb.X509SVIDTTL, DefaultSiteSVIDTTL, sb.X509SVIDTTLRange, "site.x509_svid_ttl"),
		ServerNode:  sb.ServerNode,
		Port:        sb.Port,
	}
	if !validName(sb.Name) {
		v.errorf(sb.NameRange, "site name %q must be lowercase letters, digits and '-' (it is a path segment of SPIFFE IDs)", sb.Name)
	}
	if s.Port == 0 {
		s.Port = DefaultServerPort
	}
	v.nested(top.Cloud.CATTL, s.CATTL, "cloud.ca_ttl", fmt.Sprintf("site %q ca_ttl", s.Name), rangeOr(sb.CATTLRange, sb.DefRange))
	v.nested(s.CATTL, s.X509SVIDTTL, fmt.Sprintf("site %q ca_ttl", s.Name), "its x509_svid_ttl", rangeOr(sb.X509SVIDTTLRange, sb.DefRange))

	siteNodes := map[string]bool{}
	for _, nb := range sb.Nodes {
		if prev, ok := allNodes[nb.Name]; ok {
			v.errorf(nb.NameRange, "duplicate node %q (first defined at %s); KubeEdge node names are unique in a cluster", nb.Name, rangeString(prev))
			continue
		}
		if !validNodeName(nb.Name) {
			v.errorf(nb.NameRange, "node name %q is not a valid Kubernetes node name", nb.Name)
		}
		allNodes[nb.Name] = nb.NameRange
		siteNodes[nb.Name] = true
		s.Nodes = append(s.Nodes, Node{Name: nb.Name, Address: nb.Address, Labels: nb.Labels})
	}
	if len(sb.Nodes) == 0 {
		v.errorf(sb.DefRange, "site %q has no node blocks", s.Name)
	}
	if s.ServerNode == "" && len(s.Nodes) > 0 {
		s.ServerNode = s.Nodes[0].Name
	} else if s.ServerNode != "" && !siteNodes[s.ServerNode] {
		v.errorf(sb.ServerNodeRange, "site %q: server_node %q is not one of its nodes", s.Name, s.ServerNode)
	}
	if s.ServerNode != "" {
		v.claimPort(s.ServerNode, s.Port, fmt.Sprintf("the edge server of site %q", s.Name), rangeOr(sb.PortRange, sb.DefRange))
	}

	seen := map[string]hcl.Range{}
	for _, wb := range sb.Workloads {
		if prev, ok := seen[wb.Name]; ok {
			v.errorf(wb.NameRange, "duplicate workload %q in site %q (first defined at %s)", wb.Name, s.Name, rangeString(prev))
			continue
		}
		seen[wb.Name] = wb.NameRange
		s.Workloads = append(s.Workloads, v.workload(wb, s, siteNodes, top.Dir))
	}
	return s
}

func (v *validator) workload(wb *WorkloadBlock, s Site, siteNodes map[string]bool, dir string) Workload {
	w := Workload{
		Name:        wb.Name,
		Kind:        orDefault(wb.Kind, KindApp),
		Node:        orDefault(wb.Node, s.ServerNode),
		Config:      resolve(dir, wb.Config),
		App:         wb.App,
		Topics:      wb.Topics,
		Command:     wb.Command,
		Args:        wb.Args,
		Selectors:   wb.Selectors,
		X509SVIDTTL: v.duration(wb.X509SVIDTTL, s.X509SVIDTTL, wb.X509SVIDTTLRange, "workload.x509_svid_ttl"),
	}
	if !validPath(wb.Name) {
		v.errorf(wb.NameRange, "workload name %q must be lowercase letters, digits, '-' and '/' (it becomes the SPIFFE ID path)", wb.Name)
	}
	if wb.Node != "" && !siteNodes[wb.Node] {
		v.errorf(wb.NodeRange, "workload %q: node %q is not a node of site %q", w.Name, wb.Node, s.Name)
	}
	switch w.Kind {
	case KindDeepStream:
		if w.App == "" {
			w.App = "deepstream-test5-app"
		}
		if w.Config == "" {
			v.errorf(wb.DefRange, "workload %q: kind \"deepstream\" needs config (the pipeline's DeepStream app config)", w.Name)
		} else if _, err := os.Stat(w.Config); err != nil {
			v.errorf(wb.ConfigRange, "workload %q: config: %v", w.Name, err)
		}
	case KindEdgeHub, KindEventBus, KindApp:
		if len(w.Selectors) == 0 && w.Command == "" {
			v.errorf(wb.DefRange, "workload %q: kind %q needs selectors or a command to attest", w.Name, w.Kind)
		}
	default:
		v.errorf(wb.KindRange, "workload %q: kind %q is not one of deepstream, edgehub, eventbus, app", w.Name, w.Kind)
	}
	for _, sel := range w.Selectors {
		if typ, value, ok := strings.Cut(sel, ":"); !ok || typ == "" || value == "" {
			v.errorf(wb.SelectorsRange, "workload %q: selector %q is not type:value", w.Name, sel)
		}
	}
	v.nested(s.CATTL, w.X509SVIDTTL, fmt.Sprintf("site %q ca_ttl", s.Name), fmt.Sprintf("workload %q x509_svid_ttl", w.Name), rangeOr(wb.X509SVIDTTLRange, wb.DefRange))
	if wb.User != "" {
		w.User = v.user(wb.User, 0, wb.UserRange, fmt.Sprintf("workload %q user", w.Name))
	} else {
		w.User = User{UID: v.workloadUIDBase + v.workloadCount}
	}
	v.workloadCount++
	v.workloadRanges[s.Name+"/"+w.Name] = rangeOr(wb.UserRange, wb.DefRange)
	if wb.ExeSHA256 != "" {
		if w.Kind != KindDeepStream {
			v.errorf(wb.ExeSHA256Range, "workload %q: exe_sha256 applies to deepstream workloads only", w.Name)
		} else if !validSHA256(wb.ExeSHA256) {
			v.errorf(wb.ExeSHA256Range, "workload %q: exe_sha256 %q is not 64 lowercase hex digits", w.Name, wb.ExeSHA256)
		}
		w.ExeSHA256 = wb.ExeSHA256
	}
	return w
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validUserName is the portable shape of a Unix user name (useradd's
// default NAME_REGEX, at most 32 characters).
func validUserName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case (c >= '0' && c <= '9' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func (v *validator) tunnel(tb *TunnelBlock, top *Topology) Tunnel {
	t := Tunnel{Name: tb.Name, Site: tb.Site, Workload: tb.Workload, Mode: tb.Mode, Listen: tb.Listen, Target: tb.Target, AllowedSPIFFEIDs: tb.AllowedSPIFFEIDs}
	switch t.Mode {
	case "client", "server":
	default:
		v.errorf(tb.ModeRange, "tunnel %q: mode %q is not one of client, server", t.Name, t.Mode)
	}
	var site *Site
	for i := range top.Sites {
		if top.Sites[i].Name == t.Site {
			site = &top.Sites[i]
		}
	}
	if site == nil {
		v.errorf(tb.SiteRange, "tunnel %q: site %q is not defined", t.Name, t.Site)
	} else {
		found := false
		for _, w := range site.Workloads {
			if w.Name == t.Workload {
				found = true
				if _, port, err := net.SplitHostPort(t.Listen); err == nil {
					p, _ := strconv.Atoi(port)
					v.claimPort(w.Node, p, fmt.Sprintf("tunnel %q", t.Name), tb.ListenRange)
				}
			}
		}
		if !found {
			v.errorf(tb.SiteRange, "tunnel %q: workload %q is not defined in site %q", t.Name, t.Workload, t.Site)
		}
	}
	if _, _, err := net.SplitHostPort(t.Listen); err != nil {
		v.errorf(tb.ListenRange, "tunnel %q: listen %q is not host:port", t.Name, t.Listen)
	}
	if _, _, err := net.SplitHostPort(t.Target); err != nil {
		v.errorf(tb.DefRange, "tunnel %q: target %q is not host:port", t.Name, t.Target)
	}
	if len(t.AllowedSPIFFEIDs) == 0 {
		v.errorf(tb.DefRange, "tunnel %q: allowed_spiffe_ids is empty; a tunnel must name the peers it accepts", t.Name)
	}
	for _, id := range t.AllowedSPIFFEIDs {
		if _, err := spiffeid.FromString(id); err != nil {
			if _, err2 := spiffeid.TrustDomainFromString(id); err2 != nil {
				v.errorf(tb.DefRange, "tunnel %q: allowed_spiffe_ids: %q: %v", t.Name, id, err)
			}
		}
	}
	return t
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}

func validNodeName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !validName(part) {
			return false
		}
	}
	return true
}

func validPath(s string) bool {
	if s == "" {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if !validName(seg) {
			return false
		}
	}
	return true
}

// ErrNotFound is returned by lookups for a name the topology lacks.
var ErrNotFound = errors.New("topology: not found")

// Site returns the site with the given name.
func (t *Topology) Site(name string) (*Site, error) {
	for i := range t.Sites {
		if t.Sites[i].Name == name {
			return &t.Sites[i], nil
		}
	}
	return nil, fmt.Errorf("%w: site %q", ErrNotFound, name)
}

// rangeOr returns r, or fallback when r is unset (an omitted attribute).
func rangeOr(r, fallback hcl.Range) hcl.Range {
	if r.Filename == "" {
		return fallback
	}
	return r
}
