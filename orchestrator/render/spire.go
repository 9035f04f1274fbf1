package render

import (
	"path/filepath"
	"text/template"
	"time"

	"github.com/edgeid/edgeid/orchestrator/topology"
)

// observeTmpl is the telemetry and health_checks blocks of a SPIRE server
// or agent: Prometheus metrics and the health listener on their own ports,
// or no health listener when the topology turns metrics off.
const observeTmpl = `{{define "observe"}}{{with .}}telemetry {
    Prometheus {
        host = {{q .Bind}}
        port = {{.MetricsPort}}
    }
}

health_checks {
    listener_enabled = true
    bind_address = {{q .Bind}}
    bind_port = "{{.HealthPort}}"
    live_path = "/live"
    ready_path = "/ready"
}
{{else}}health_checks {
    listener_enabled = false
}
{{end}}{{end}}`

// commonData is what every rendered SPIRE config names.
type commonData struct {
	Topology  string // the topology file's base name, for the header
	TD        string
	Embedded  bool
	Cluster   string
	LogFormat string
}

// serverData fills serverTmpl. A cloud server sets Cloud and the Vault
// fields; an edge server sets the Upstream fields.
type serverData struct {
	commonData
	What                     string
	BindAddr, Port           string
	Socket, DataDir          string
	CATTL, SVIDTTL           time.Duration
	SQLitePath, KeysPath     string
	KubeEdge                 Binary
	KubeEdgeCA, Kubeconfig   string
	Cloud                    bool
	PostgresDSN              string
	VaultPKI                 Binary
	VaultAddr, VaultCACert   string
	PKIIntMount, KVMount     string
	RoleIDFile, SecretIDFile string
	RotateSecretID           bool
	UpstreamHost             string
	UpstreamPort             string
	UpstreamSocket           string
	Obs                      *obsData
}

// agentData fills agentTmpl: a KubeEdge node's agent (NodeCert, NodeKey,
// and DeepStream on an edge node) or the cloud host's (JoinTokenFile).
type agentData struct {
	commonData
	What                   string
	DataDir                string
	ServerHost, ServerPort string
	Socket, BundlePath     string
	JoinTokenFile          string
	KubeEdge               Binary
	NodeCert, NodeKey      string
	DeepStream             *Binary
	Obs                    *obsData
}

// serverTmpl is every SPIRE server: a cloud server (its CA signed by Vault,
// optionally on PostgreSQL, with a join-token attestor for the cloud host's
// own agent) or a site's edge server (its CA signed by the cloud through
// the node's upstream agent).
var serverTmpl = template.Must(template.Must(template.New("server").Funcs(funcs).Parse(observeTmpl)).Parse(header + `{{with .What}}# {{.}}
{{end}}server {
    bind_address = {{q .BindAddr}}
    bind_port = "{{.Port}}"
    socket_path = {{q .Socket}}
    trust_domain = {{q .TD}}
    data_dir = {{q .DataDir}}
    log_level = "INFO"
    log_format = {{q .LogFormat}}
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
{{- if .RotateSecretID}}
                # The file holds a wrapped secret_id until the first start;
                # the plugin unwraps it, and replaces the secret_id at 2/3
                # of its TTL with one it makes for itself (wrapped).
                rotate_secret_id = true
{{- end}}
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

{{template "observe" .Obs}}`))

// agentTmpl is every SPIRE agent: a KubeEdge node's (attests with the
// node's certificate) or the cloud host's own (joins once with a token).
var agentTmpl = template.Must(template.Must(template.New("agent").Funcs(funcs).Parse(observeTmpl)).Parse(header + `# {{.What}}
agent {
    data_dir = {{q .DataDir}}
    log_level = "INFO"
    log_format = {{q .LogFormat}}
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

{{template "observe" .Obs}}`))

func (b *builder) common() commonData {
	return commonData{
		Topology:  filepath.Base(b.top.Path),
		TD:        b.top.TrustDomain,
		Embedded:  b.env.Embedded,
		Cluster:   b.top.KubeEdge.Cluster,
		LogFormat: b.top.Observability.LogFormat,
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

func (b *builder) renderCloudServer(h *Host, svc *Service, index int) []byte {
	vaultHost := b.host(b.top.Vault.Host)
	d := b.serverData(h, svc, b.top.Cloud.CATTL, b.top.Cloud.X509SVIDTTL)
	d.Cloud = true
	d.VaultPKI = b.env.Bins.VaultPKI
	d.PKIIntMount, d.KVMount = b.top.Vault.PKIIntMount, b.top.Vault.KVMount
	d.VaultAddr = b.env.VaultAddr
	if d.VaultAddr == "" {
		d.VaultAddr = b.top.Vault.Address
	}
	if d.VaultAddr == "" && b.top.Vault.Managed {
		if _, vs := b.plan.Service(Ref(vaultHost.Name, "vault")); vs != nil {
			d.VaultAddr = vs.URL
		}
	}
	d.VaultCACert = b.env.VaultCACert
	if d.VaultCACert == "" {
		d.VaultCACert = b.top.Vault.CACert
	}
	if d.VaultCACert == "" && b.top.Vault.Managed && !b.env.Embedded {
		d.VaultCACert, _ = VaultTLSFiles(vaultHost)
	}
	d.RoleIDFile, d.SecretIDFile = b.top.Vault.RoleIDFile, b.top.Vault.SecretIDFile
	if b.top.Vault.Managed {
		d.RoleIDFile, d.SecretIDFile = b.roleIDFile(vaultHost), b.secretIDFile(vaultHost, index, h.Name)
		d.RotateSecretID = true
	}
	if b.top.Cloud.Datastore == "postgres" {
		d.PostgresDSN = b.top.Cloud.PostgresDSN
		if b.env.PostgresDSN != "" {
			d.PostgresDSN = b.env.PostgresDSN
		}
	}
	return execute(serverTmpl, d)
}

func (b *builder) renderEdgeServer(h *Host, svc *Service, upstream Service, cloudAddr string, site topology.Site) []byte {
	d := b.serverData(h, svc, site.CATTL, site.X509SVIDTTL)
	d.What = "Edge server of site " + quote(site.Name) + ": a nested SPIRE server whose CA is signed\n" +
		"# by the cloud through the local cloud agent. It keeps issuing while the\n" +
		"# cloud is unreachable, until its CA (ca_ttl) expires."
	d.UpstreamHost, d.UpstreamPort = splitHostPort(cloudAddr)
	d.UpstreamSocket = upstream.Socket
	return execute(serverTmpl, d)
}

// serverData is what every server has.
func (b *builder) serverData(h *Host, svc *Service, caTTL, svidTTL time.Duration) serverData {
	host, port := splitHostPort(svc.Addr)
	if !b.env.Embedded {
		host = "0.0.0.0"
	}
	return serverData{
		commonData: b.common(),
		BindAddr:   host, Port: port, Socket: svc.Socket, DataDir: svc.DataDir,
		CATTL: caTTL, SVIDTTL: svidTTL,
		SQLitePath: filepath.Join(svc.DataDir, "datastore.sqlite3"),
		KeysPath:   filepath.Join(svc.DataDir, "keys.json"),
		KubeEdge:   b.env.Bins.KubeEdgeServer, KubeEdgeCA: b.kubeEdgeCA(h), Kubeconfig: b.top.KubeEdge.Kubeconfig,
		Obs: b.observe(h, svc, topology.DefaultServerMetricsPort, topology.DefaultServerHealthPort),
	}
}

func (b *builder) renderKubeEdgeAgent(h *Host, svc *Service, serverAddr string, edge bool) []byte {
	d := b.agentData(h, svc, serverAddr)
	d.What = "Cloud agent of edge node " + h.Name + ": attests to the cloud servers with the node's KubeEdge certificate, and gives the edge server its downstream identity."
	d.KubeEdge, d.NodeCert, d.NodeKey = b.env.Bins.KubeEdgeAgent, svc.NodeCert, svc.NodeKey
	if edge {
		d.What = "Edge agent of node " + h.Name + ": attests to its site's edge server with the node's KubeEdge certificate, and serves the node's workloads."
		ds := b.env.Bins.DeepStream
		d.DeepStream = &ds
	}
	return execute(agentTmpl, d)
}

func (b *builder) renderJoinTokenAgent(h *Host, svc *Service, serverAddr string) []byte {
	d := b.agentData(h, svc, serverAddr)
	d.What = "The cloud host's agent, for cloud workloads (the Kafka broker). It joins\n# once with a join token from `edgeid up` and then renews its SVID."
	d.JoinTokenFile = h.path("spire", "join-token")
	return execute(agentTmpl, d)
}

// agentData is what every agent has.
func (b *builder) agentData(h *Host, svc *Service, serverAddr string) agentData {
	host, port := splitHostPort(serverAddr)
	metrics, health := topology.DefaultAgentMetricsPort, topology.DefaultAgentHealthPort
	if svc.Name == "upstream-agent" {
		metrics, health = topology.DefaultUpstreamAgentMetricsPort, topology.DefaultUpstreamAgentHealthPort
	}
	return agentData{
		Obs:        b.observe(h, svc, metrics, health),
		commonData: b.common(),
		DataDir:    svc.DataDir, ServerHost: host, ServerPort: port,
		Socket: svc.Socket, BundlePath: svc.BundlePath,
	}
}
