package render

import (
	"net"
	"strconv"
	"text/template"

	"github.com/edgeid/edgeid/internal/tlspolicy"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// VaultTLSFiles are where a managed Vault on real hosts keeps its TLS
// certificate (self-signed, so it is its own CA for clients) and key.
func VaultTLSFiles(h *Host) (cert, key string) {
	return h.path("vault", "tls", "vault.crt"), h.path("vault", "tls", "vault.key")
}

// vaultData fills vaultTmpl. TLS is off in an embedded run (loopback
// only); Seal is vault.seal_transit, or nil for Shamir.
type vaultData struct {
	DataDir, NodeID      string
	Listen               string
	TLSCert, TLSKey      string
	Seal                 *topology.SealTransit
	APIAddr, ClusterAddr string
	// Metrics serves Prometheus metrics at /v1/sys/metrics without a token.
	Metrics bool
}

// vaultTmpl is the managed Vault's configuration. On one machine it listens
// on loopback only; on real hosts it listens on every interface, TLS 1.2+
// with ECDHE and AES-GCM only. With vault.seal_transit it unseals itself
// with another Vault's Transit engine: the token stays in its file on the
// Vault host, since Vault reads "file://<path>" itself whenever it sets up
// the seal, so the token is in no rendered file, command line or
// environment.
var vaultTmpl = template.Must(template.New("vault").Funcs(funcs).Parse(`# Rendered by edgeid: the managed Vault. Integrated storage (raft), so the
# same config grows into an HA cluster.
storage "raft" {
    path = {{q .DataDir}}
    node_id = {{q .NodeID}}
    # Vault's guidance for production: 1 gives the fastest leader
    # election and failure detection (the default 5 suits slow disks).
    performance_multiplier = 1
}
listener "tcp" {
    address = {{q .Listen}}
{{- if .TLSCert}}
    tls_cert_file = {{q .TLSCert}}
    tls_key_file = {{q .TLSKey}}
    tls_min_version = "tls12"
    tls_cipher_suites = {{q .Suites}}
{{- else}}
    tls_disable = true
{{- end}}
{{- if .Metrics}}
    # Prometheus scrapes /v1/sys/metrics?format=prometheus without a token.
    telemetry {
        unauthenticated_metrics_access = true
    }
{{- end}}
}
{{- with .Seal}}
# Vault unseals itself with the Transit engine of another Vault (the
# "unsealer"); the token may only encrypt and decrypt with key_name. Vault
# reads the token from the file, verbatim (no trailing newline).
seal "transit" {
    address = {{q .Address}}
    token = {{q (print "file://" .TokenFile)}}
    mount_path = {{q (print .Mount "/")}}
    key_name = {{q .KeyName}}
{{- if .CACert}}
    tls_ca_cert = {{q .CACert}}
{{- end}}
    disable_renewal = {{q (print .DisableRenewal)}}
}
{{- end}}
{{- if .Metrics}}
telemetry {
    prometheus_retention_time = "1h"
    disable_hostname = true
}
{{- end}}
api_addr = {{q .APIAddr}}
cluster_addr = {{q .ClusterAddr}}
disable_mlock = true
ui = false
`))

// Suites are the TLS 1.2 suites the listener allows.
func (vaultData) Suites() string { return tlspolicy.NameList() }

func (b *builder) renderVaultConfig(h *Host, addr, url string) []byte {
	d := vaultData{
		DataDir: h.path("vault", "data"), NodeID: h.Name, Listen: addr,
		Seal: b.top.Vault.SealTransit, APIAddr: url, ClusterAddr: "https://" + clusterAddr(addr),
		Metrics: b.top.Observability.Metrics,
	}
	if !b.env.Embedded {
		_, port := splitHostPort(addr)
		d.Listen = "0.0.0.0:" + port
		d.TLSCert, d.TLSKey = VaultTLSFiles(h)
	}
	return execute(vaultTmpl, d)
}

// splitHostPort splits a plan's host:port (an IPv6 host is bracketed);
// the plan only holds addresses it made, so a malformed one is a bug and
// renders as a host with no port, which SPIRE and Vault then refuse.
func splitHostPort(addr string) (host, port string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, ""
	}
	return host, port
}

// clusterAddr is Vault's cluster address: the API port plus one.
func clusterAddr(addr string) string {
	host, port := splitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return net.JoinHostPort(host, strconv.Itoa(p+1))
}

// UnsealIdentityPath is where `edgeid up` keeps the age identity that
// decrypts a managed Vault's local key share (see UsesLocalUnsealIdentity).
func UnsealIdentityPath(h *Host) string { return h.path("vault", "unseal-identity.txt") }

// UnsealIdentitiesEnv is the environment variable from which the bootstrap
// of a managed Vault with custodians reads their age identities (one per
// line) when it needs their shares: to unseal Vault after a restart, or to
// generate a root token for a changed configuration.
const UnsealIdentitiesEnv = "EDGEID_VAULT_UNSEAL_IDENTITIES"

// UsesLocalUnsealIdentity reports whether a managed Vault's key shares are
// encrypted to an age identity that `edgeid up` keeps on the Vault host
// (UnsealIdentityPath): always in an embedded run (one machine, dev only),
// and on real hosts only for the recovery shares of a Vault that unseals
// itself with seal_transit and has no custodians. Custodians' identities
// never are on the host.
func UsesLocalUnsealIdentity(v topology.Vault, embedded bool) bool {
	return embedded || (v.SealTransit != nil && len(v.UnsealCustodians) == 0)
}
