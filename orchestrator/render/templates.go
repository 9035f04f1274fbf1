package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/edgeid/edgeid/orchestrator/topology"
)

var funcs = template.FuncMap{
	"q":   quote,
	"dur": func(d time.Duration) string { return quote(d.String()) },
}

// quote renders s as a string literal that both HCL 1 (SPIRE's configs) and
// HCL 2 (edgeid's own) read back as s: Go's escapes are a subset of both,
// and "${" / "%{" are doubled so HCL 2 does not take them as templates.
func quote(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

func execute(t *template.Template, data any) []byte {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		// The templates are fixed and their data is typed: an error
		// here is a bug in this package, not bad input.
		panic(fmt.Sprintf("render: template %s: %v", t.Name(), err))
	}
	return buf.Bytes()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

const header = `# Rendered by edgeid from {{q .Topology}}; edit the topology, not this file.
`

// serverTmpl is every SPIRE server: a cloud server (its CA signed by Vault,
// optionally on PostgreSQL, with a join-token attestor for the cloud host's
// own agent) or a site's edge server (its CA signed by the cloud through
// the node's upstream agent).
var serverTmpl = template.Must(template.New("server").Funcs(funcs).Parse(header + `{{with .What}}# {{.}}
{{end}}server {
    bind_address = {{q .BindAddr}}
    bind_port = "{{.Port}}"
    socket_path = {{q .Socket}}
    trust_domain = {{q .TD}}
    data_dir = {{q .DataDir}}
    log_level = "INFO"
    ca_key_type = "ec-p256"
    ca_ttl = {{dur .CATTL}}
    default_x509_svid_ttl = {{dur .SVIDTTL}}
    default_jwt_svid_ttl = "5m"
{{- if .Embedded}}
    # Every agent of an embedded run comes from 127.0.0.1, and SPIRE allows
    # one attestation per second per address. Real hosts keep the limit.
    ratelimit {
        attestation = false
    }
{{- end}}
    experimental {
        cache_reload_interval = "1s"
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
{{- if .PostgresDSN}}
            database_type = "postgres"
            connection_string = {{q .PostgresDSN}}
{{- else}}
            database_type = "sqlite3"
            connection_string = {{q .SQLitePath}}
{{- end}}
        }
    }

    KeyManager "disk" {
        plugin_data {
            keys_path = {{q .KeysPath}}
        }
    }

    # Edge nodes prove they are KubeEdge nodes with edgecore's certificate.
{{- if .Embedded}}
    # edgeid up plays cloudcore's CA and runs no Kubernetes API server, so
    # there is no Node to check.
{{- else if .Kubeconfig}}
    # Every attestation and SVID renewal requires the node's Kubernetes Node:
    # a deleted Node is cut off at its agent's next renewal.
{{- end}}
    NodeAttestor "kubeedge" {
        plugin_cmd = {{q .KubeEdge.Path}}
        plugin_checksum = {{q .KubeEdge.Checksum}}
        plugin_data {
            cluster = {{q .Cluster}}
            ca_bundle_path = {{q .KubeEdgeCA}}
{{- if .Embedded}}
            kubernetes_check = "disabled"
{{- else if .Kubeconfig}}
            kubeconfig = {{q .Kubeconfig}}
            kubernetes_check = "required"
{{- end}}
        }
    }
{{if .Cloud}}
    # The cloud host's own agent (for cloud workloads such as Kafka).
    NodeAttestor "join_token" {
        plugin_data {}
    }

    # The cloud CA is signed by Vault's intermediate ({{.PKIIntMount}}).
    UpstreamAuthority "vault_pki" {
        plugin_cmd = {{q .VaultPKI.Path}}
        plugin_checksum = {{q .VaultPKI.Checksum}}
        plugin_data {
            vault_addr = {{q .VaultAddr}}
{{- if .VaultCACert}}
            ca_cert_path = {{q .VaultCACert}}
{{- end}}
            pki_mount_point = {{q .PKIIntMount}}
            kv_mount_point = {{q .KVMount}}
            approle_auth {
                role_id_file = {{q .RoleIDFile}}
                secret_id_file = {{q .SecretIDFile}}
            }
        }
    }
{{- else}}
    UpstreamAuthority "spire" {
        plugin_data {
            server_address = {{q .UpstreamHost}}
            server_port = "{{.UpstreamPort}}"
            workload_api_socket = {{q .UpstreamSocket}}
        }
    }
{{- end}}
}

health_checks {
    listener_enabled = false
}
`))

// agentTmpl is every SPIRE agent: a KubeEdge node's (attests with the
// node's certificate) or the cloud host's own (joins once with a token).
var agentTmpl = template.Must(template.New("agent").Funcs(funcs).Parse(header + `# {{.What}}
agent {
    data_dir = {{q .DataDir}}
    log_level = "INFO"
    server_address = {{q .ServerHost}}
    server_port = "{{.ServerPort}}"
    socket_path = {{q .Socket}}
    trust_bundle_path = {{q .BundlePath}}
    trust_domain = {{q .TD}}
{{- if .JoinTokenFile}}
    join_token_file = {{q .JoinTokenFile}}
{{- end}}
{{- if .Embedded}}
    experimental {
        sync_interval = "1s"
    }
{{- end}}
}

plugins {
    KeyManager "disk" {
        plugin_data {
            directory = {{q .DataDir}}
        }
    }
{{if .JoinTokenFile}}
    NodeAttestor "join_token" {
        plugin_data {}
    }
{{- else}}
    NodeAttestor "kubeedge" {
        plugin_cmd = {{q .KubeEdge.Path}}
        plugin_checksum = {{q .KubeEdge.Checksum}}
        plugin_data {
            certificate_path = {{q .NodeCert}}
            private_key_path = {{q .NodeKey}}
        }
    }
{{- end}}

    WorkloadAttestor "unix" {
        plugin_data {
            discover_workload_path = true
        }
    }
{{- if .DeepStream}}

    # Attests DeepStream pipelines, and the helper that launched one.
    WorkloadAttestor "deepstream" {
        plugin_cmd = {{q .DeepStream.Path}}
        plugin_checksum = {{q .DeepStream.Checksum}}
        plugin_data {}
    }
{{- end}}
}

health_checks {
    listener_enabled = false
}
`))

var helperTmpl = template.Must(template.New("helper").Funcs(funcs).Parse(header + `# edgeid-helper for workload {{q .Workload}} ({{.ID}}).
agent_address = {{q .AgentAddress}}
spiffe_id = {{q .ID}}
cert_dir = {{q .CertDir}}
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "bundle.pem"
combined_pem_file_name = "svid_combined.pem"
{{- if .Cmd}}
cmd = {{q .Cmd}}
cmd_args = {{q .CmdArgs}}
# librdkafka (DeepStream's Kafka client) never reloads certificates, so the
# pipeline restarts on rotation; it starts only once its first SVID is on disk.
on_rotate = "restart"
hold_until_svid = true
restart_on_exit = true
{{- end}}

# Kafka client configs, rewritten on every rotation: librdkafka properties
# and DeepStream's cfg_kafka.txt (which the pipeline config names).
kafka {
    bootstrap_servers = {{q .Kafka}}
    endpoint_identification_algorithm = {{q .EndpointID}}
    librdkafka_file_name = "kafka.properties"
    deepstream_file_name = "cfg_kafka.txt"
}
{{- range .Tunnels}}

# SPIFFE mTLS tunnel {{q .Name}}: keys never touch the disk; new SVIDs
# apply to new connections at once.
tunnel {{q .Name}} {
    mode = {{q .Mode}}
    listen = {{q .Listen}}
    target = {{q .Target}}
    allowed_spiffe_ids = [{{range $i, $id := .AllowedSPIFFEIDs}}{{if $i}}, {{end}}{{q $id}}{{end}}]
}
{{- end}}
`))

// VaultTLSFiles are where a managed Vault on real hosts keeps its TLS
// certificate (self-signed, so it is its own CA for clients) and key.
func VaultTLSFiles(h *Host) (cert, key string) {
	return h.path("vault", "tls", "vault.crt"), h.path("vault", "tls", "vault.key")
}

// renderVaultConfig is the managed Vault's configuration. On one machine it
// listens on loopback only; on real hosts it listens on every interface,
// TLS 1.2+ with ECDHE and AES-GCM only. With vault.seal_transit it unseals
// itself with another Vault's Transit engine.
func (b *builder) renderVaultConfig(h *Host, addr, url string) []byte {
	listener := fmt.Sprintf(`listener "tcp" {
    address = %s
    tls_disable = true
}`, quote(addr))
	if !b.env.Embedded {
		cert, key := VaultTLSFiles(h)
		_, port := splitHostPort(addr)
		listener = fmt.Sprintf(`listener "tcp" {
    address = %s
    tls_cert_file = %s
    tls_key_file = %s
    tls_min_version = "tls12"
    tls_cipher_suites = %s
}`, quote("0.0.0.0:"+port), quote(cert), quote(key), quote(tlsSuites))
	}
	return []byte(fmt.Sprintf(`# Rendered by edgeid: the managed Vault. Integrated storage (raft), so the
# same config grows into an HA cluster.
storage "raft" {
    path = %s
    node_id = %s
    # Vault's guidance for production: 1 gives the fastest leader
    # election and failure detection (the default 5 suits slow disks).
    performance_multiplier = 1
}
%s
%sapi_addr = %s
cluster_addr = %s
disable_mlock = true
ui = false
`, quote(h.path("vault", "data")), quote(h.Name), listener, b.renderSeal(), quote(url), quote("https://"+clusterAddr(addr))))
}

// renderSeal is Vault's seal "transit" stanza for vault.seal_transit, or
// nothing (Shamir). The token stays in its file on the Vault host: Vault
// reads "file://<path>" itself whenever it sets up the seal, so the token
// is in no rendered file, no command line and no environment.
func (b *builder) renderSeal() string {
	st := b.top.Vault.SealTransit
	if st == nil {
		return ""
	}
	var w strings.Builder
	w.WriteString(`# Vault unseals itself with the Transit engine of another Vault (the
# "unsealer"); the token may only encrypt and decrypt with key_name. Vault
# reads the token from the file, verbatim (no trailing newline).
seal "transit" {
`)
	fmt.Fprintf(&w, "    address = %s\n", quote(st.Address))
	fmt.Fprintf(&w, "    token = %s\n", quote("file://"+st.TokenFile))
	fmt.Fprintf(&w, "    mount_path = %s\n", quote(st.Mount+"/"))
	fmt.Fprintf(&w, "    key_name = %s\n", quote(st.KeyName))
	if st.CACert != "" {
		fmt.Fprintf(&w, "    tls_ca_cert = %s\n", quote(st.CACert))
	}
	fmt.Fprintf(&w, "    disable_renewal = %s\n", quote(strconv.FormatBool(st.DisableRenewal)))
	w.WriteString("}\n")
	return w.String()
}

// tlsSuites are the TLS 1.2 suites edgeid allows: ECDHE with AES-GCM.
const tlsSuites = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"

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

// renderBootstrap is the managed Vault's bootstrap configuration. The key
// shares (unseal shares, or recovery shares when Vault unseals itself) go
// to the custodians on real hosts, or to the local identity (embedded, or
// seal_transit alone).
func (b *builder) renderBootstrap(h *Host, url string) []byte {
	top := b.top
	v := top.Vault
	var w strings.Builder
	fmt.Fprintf(&w, "# Rendered by edgeid: bootstrap of the managed Vault (see bootstrap/README.md).\nstate_dir = %s\nsummary_file = %s\n\n",
		quote(h.path("vault", "bootstrap")), quote(h.path("vault", "bootstrap", "summary.json")))
	fmt.Fprintf(&w, "vault {\n    address = %s\n    wait_timeout = \"60s\"\n", quote(url))
	if !b.env.Embedded {
		cert, _ := VaultTLSFiles(h)
		fmt.Fprintf(&w, "    ca_cert_file = %s\n", quote(cert))
	}
	w.WriteString("}\n\n")

	sharesKey, thresholdKey, kind, dir := "secret_shares", "secret_threshold", "unseal", "unseal"
	if v.SealTransit != nil {
		sharesKey, thresholdKey, kind, dir = "recovery_shares", "recovery_threshold", "recovery", "recovery"
		fmt.Fprintf(&w, `# Vault unseals itself with the Transit engine at %[1]s (seal "transit" in
# vault.hcl): init makes recovery shares, which authorise a root token but
# cannot unseal, and the bootstrap never submits a share.
auto_unseal {
    transit_address = %[1]s
}

`, quote(v.SealTransit.Address))
	}
	local := UsesLocalUnsealIdentity(v, b.env.Embedded)
	fmt.Fprintf(&w, "init {\n")
	if local {
		recipient := ""
		if b.env.UnsealRecipient != "" {
			recipient = quote(b.env.UnsealRecipient)
		}
		fmt.Fprintf(&w, "    %s = 1\n    %s = 1\n    shares_dir = %s\n", sharesKey, thresholdKey, quote(h.path("vault", "bootstrap", dir)))
		if b.env.Embedded {
			fmt.Fprintf(&w, `    # DEV ONLY (embedded run): one %s share, encrypted to an age identity
    # kept beside it (0600). Whoever reads this tree holds the share. Real
    # hosts use vault.unseal_custodians or vault.seal_transit.
`, kind)
			if len(v.UnsealCustodians) > 0 {
				w.WriteString("    # vault.unseal_custodians are not used in an embedded run.\n")
			}
		} else {
			w.WriteString(`    # Vault unseals itself; its one recovery share is encrypted to an age
    # identity on this host, so whoever reads this tree and reaches Vault's
    # API can generate a root token. vault.unseal_custodians keep the
    # recovery shares off the host.
`)
		}
		fmt.Fprintf(&w, "    age_recipients = [%s]\n}\n\nunseal {\n    age_identity_files = [%s]\n}\n", recipient, quote(UnsealIdentityPath(h)))
	} else {
		recs := make([]string, len(v.UnsealCustodians))
		for i, r := range v.UnsealCustodians {
			recs[i] = quote(r)
		}
		fmt.Fprintf(&w, "    %s = %d\n    %s = %d\n    shares_dir = %s\n", sharesKey, len(recs), thresholdKey, v.UnsealThreshold, quote(h.path("vault", "bootstrap", dir)))
		when := "unseal shares: to unseal\n# Vault after a restart, or for a root token when the configuration changes."
		if v.SealTransit != nil {
			when = "recovery shares: for a\n# root token when the configuration changes (Vault unseals itself)."
		}
		fmt.Fprintf(&w, `    # Share i is encrypted to custodian i (vault.unseal_custodians); their
    # identities are never on this host.
    age_recipients = [%s]
    age_recipient_mode = "per_share"
}

# The custodians' identities (one per line) come from this environment
# variable for the one run that needs %d of their %s
unseal {
    age_identity_env = %s
}
`, strings.Join(recs, ", "), v.UnsealThreshold, when, quote(UnsealIdentitiesEnv))
	}

	fmt.Fprintf(&w, `
pki_root {
    path = %s
    common_name = "edgeid root CA"
}

pki_intermediate {
    path = %s
    common_name = "edgeid intermediate CA"
}

spire_upstream {
    kv_mount = %s
    role_id_file = %s
    secret_id_file = %s
}

audit {
    enabled = true
    file_path = %s
}
`, quote(v.PKIMount), quote(v.PKIIntMount), quote(v.KVMount),
		quote(b.roleIDFile(h)), quote(b.secretIDFile(h)), quote(h.path("vault", "audit.log")))
	return []byte(w.String())
}

func (b *builder) roleIDFile(h *Host) string {
	if b.env.RoleIDFile != "" {
		return b.env.RoleIDFile
	}
	return h.path("vault", "bootstrap", "approle", "role_id")
}

func (b *builder) secretIDFile(h *Host) string {
	if b.env.SecretIDFile != "" {
		return b.env.SecretIDFile
	}
	return h.path("vault", "bootstrap", "approle", "secret_id")
}

func (b *builder) common(h *Host) map[string]any {
	return map[string]any{
		"Topology": filepath.Base(b.top.Path),
		"TD":       b.top.TrustDomain,
		"Embedded": b.env.Embedded,
		"Cluster":  b.top.KubeEdge.Cluster,
		"KubeEdge": Binary{},
	}
}

func (b *builder) kubeEdgeCA(h *Host) string {
	if b.env.KubeEdgeCA != "" {
		return b.env.KubeEdgeCA
	}
	if b.top.KubeEdge.CACert != "" {
		return b.top.KubeEdge.CACert
	}
	if !b.env.Embedded {
		// Where cloudcore's CA sits on a KubeEdge host.
		return "/etc/kubeedge/ca/rootCA.crt"
	}
	return h.path("kubeedge", "ca", "rootCA.crt")
}

func (b *builder) renderCloudServer(h *Host, svc Service, index int) []byte {
	vaultHost := b.host(b.top.Vault.Host)
	vaultAddr := b.env.VaultAddr
	if vaultAddr == "" {
		vaultAddr = b.top.Vault.Address
	}
	if vaultAddr == "" && b.top.Vault.Managed {
		_, vs := b.plan.Service(Ref(vaultHost.Name, "vault"))
		if vs != nil {
			vaultAddr = vs.URL
		}
	}
	caCert := b.env.VaultCACert
	if caCert == "" {
		caCert = b.top.Vault.CACert
	}
	if caCert == "" && b.top.Vault.Managed && !b.env.Embedded {
		caCert, _ = VaultTLSFiles(vaultHost)
	}
	roleID, secretID := b.top.Vault.RoleIDFile, b.top.Vault.SecretIDFile
	if b.top.Vault.Managed {
		roleID, secretID = b.roleIDFile(vaultHost), b.secretIDFile(vaultHost)
	}
	dsn := ""
	if b.top.Cloud.Datastore == "postgres" {
		dsn = b.top.Cloud.PostgresDSN
		if b.env.PostgresDSN != "" {
			dsn = b.env.PostgresDSN
		}
	}
	return b.renderServer(h, svc, "", b.top.Cloud.CATTL, b.top.Cloud.X509SVIDTTL, map[string]any{
		"Cloud": true, "PostgresDSN": dsn,
		"VaultPKI": b.env.Bins.VaultPKI, "VaultAddr": vaultAddr, "VaultCACert": caCert,
		"PKIIntMount": b.top.Vault.PKIIntMount, "KVMount": b.top.Vault.KVMount,
		"RoleIDFile": roleID, "SecretIDFile": secretID,
	})
}

func (b *builder) renderEdgeServer(h *Host, svc, upstream Service, cloudAddr string, site topology.Site) []byte {
	what := "Edge server of site " + quote(site.Name) + ": a nested SPIRE server whose CA is signed\n" +
		"# by the cloud through the local cloud agent. It keeps issuing while the\n" +
		"# cloud is unreachable, until its CA (ca_ttl) expires."
	upHost, upPort := splitHostPort(cloudAddr)
	return b.renderServer(h, svc, what, site.CATTL, site.X509SVIDTTL, map[string]any{
		"UpstreamHost": upHost, "UpstreamPort": upPort, "UpstreamSocket": upstream.Socket,
	})
}

// renderServer fills serverTmpl: what every server has, then extra.
func (b *builder) renderServer(h *Host, svc Service, what string, caTTL, svidTTL time.Duration, extra map[string]any) []byte {
	d := b.common(h)
	host, port := splitHostPort(svc.Addr)
	if !b.env.Embedded {
		host = "0.0.0.0"
	}
	for k, v := range map[string]any{
		"What": what, "BindAddr": host, "Port": port, "Socket": svc.Socket, "DataDir": svc.DataDir,
		"CATTL": caTTL, "SVIDTTL": svidTTL,
		"SQLitePath": filepath.Join(svc.DataDir, "datastore.sqlite3"),
		"KeysPath":   filepath.Join(svc.DataDir, "keys.json"),
		"KubeEdge":   b.env.Bins.KubeEdgeServer, "KubeEdgeCA": b.kubeEdgeCA(h), "Kubeconfig": b.top.KubeEdge.Kubeconfig,
	} {
		d[k] = v
	}
	for k, v := range extra {
		d[k] = v
	}
	return execute(serverTmpl, d)
}

func (b *builder) renderKubeEdgeAgent(h *Host, svc Service, serverAddr string, edge bool) []byte {
	what := "Cloud agent of edge node " + h.Name + ": attests to the cloud servers with the node's KubeEdge certificate, and gives the edge server its downstream identity."
	extra := map[string]any{"KubeEdge": b.env.Bins.KubeEdgeAgent, "NodeCert": svc.NodeCert, "NodeKey": svc.NodeKey}
	if edge {
		what = "Edge agent of node " + h.Name + ": attests to its site's edge server with the node's KubeEdge certificate, and serves the node's workloads."
		extra["DeepStream"] = b.env.Bins.DeepStream
	}
	return b.renderAgent(h, svc, serverAddr, what, extra)
}

func (b *builder) renderJoinTokenAgent(h *Host, svc Service, serverAddr string) []byte {
	what := "The cloud host's agent, for cloud workloads (the Kafka broker). It joins\n# once with a join token from `edgeid up` and then renews its SVID."
	return b.renderAgent(h, svc, serverAddr, what, map[string]any{"JoinTokenFile": h.path("spire", "join-token")})
}

// renderAgent fills agentTmpl: what every agent has, then extra.
func (b *builder) renderAgent(h *Host, svc Service, serverAddr, what string, extra map[string]any) []byte {
	d := b.common(h)
	host, port := splitHostPort(serverAddr)
	for k, v := range map[string]any{
		"What": what, "DataDir": svc.DataDir, "ServerHost": host, "ServerPort": port,
		"Socket": svc.Socket, "BundlePath": svc.BundlePath,
	} {
		d[k] = v
	}
	for k, v := range extra {
		d[k] = v
	}
	return execute(agentTmpl, d)
}

func (b *builder) renderHelper(h *Host, agent Service, w topology.Workload, certDir, cmd string, args []string, kafka, id string) []byte {
	d := b.common(h)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	for k, v := range map[string]any{
		"Workload": w.Name, "ID": id, "AgentAddress": agent.Socket, "CertDir": certDir,
		"Cmd": cmd, "CmdArgs": strings.Join(quoted, " "),
		"Kafka": kafka, "EndpointID": b.top.Kafka.EndpointIdentification,
		"Tunnels": b.tunnelsOf(w.Name, h),
	} {
		d[k] = v
	}
	return execute(helperTmpl, d)
}

// shellQuote quotes an argument for cmd_args, which spiffe-helper splits
// like a shell does.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tunnelsOf returns the topology's tunnels run by the helper of workload
// name on host h's site.
func (b *builder) tunnelsOf(name string, h *Host) []topology.Tunnel {
	var out []topology.Tunnel
	for _, t := range b.top.Tunnels {
		site, err := b.top.Site(t.Site)
		if err != nil || t.Workload != name {
			continue
		}
		for _, w := range site.Workloads {
			if w.Name == name && w.Node == h.Name {
				out = append(out, t)
			}
		}
	}
	return out
}
