package topology

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"filippo.io/age"
	"github.com/edgeid/edgeid/internal/loopback"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

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
	case u.Scheme == "http" && !loopback.Host(u.Hostname()):
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

func (v *validator) kafka(kb *KafkaBlock, top *Topology) Kafka {
	cloud := top.Cloud
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
			// The demo broker advertises a name its SVID carries
			// ("localhost", or the cloud host's name), so clients
			// verify it by name as well as by the bundle.
			k.EndpointIdentification = "https"
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
	if kb.Encryption != nil {
		k.Encryption = v.encryption(kb.Encryption, k, top)
	}
	return k
}
