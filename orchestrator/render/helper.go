package render

import (
	"strings"
	"text/template"

	"github.com/edgeid/edgeid/orchestrator/topology"
)

// helperData fills helperTmpl: one workload's edgeid-helper.
type helperData struct {
	commonData
	Workload, ID          string
	AgentAddress, CertDir string
	Cmd, CmdArgs          string // CmdArgs is shell-quoted (spiffe-helper style)
	Kafka, EndpointID     string
	KafkaIPv4             bool
	Tunnels               []topology.Tunnel
	Obs                   *obsData
	Gateway               *edgeGatewayData
}

// helperArgs are one helper's settings that renderHelper puts in its file.
type helperArgs struct {
	certDir, cmd string
	args         []string
	kafka, id    string
	obs          *obsData
	gateway      *edgeGatewayData
}

var helperTmpl = template.Must(template.New("helper").Funcs(funcs).Parse(header + `# edgeid-helper for workload {{q .Workload}} ({{.ID}}).
agent_address = {{q .AgentAddress}}
spiffe_id = {{q .ID}}
cert_dir = {{q .CertDir}}
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "bundle.pem"
combined_pem_file_name = "svid_combined.pem"
log_format = {{q .LogFormat}}
{{- with .Obs}}

# Health (/healthz, /readyz) and Prometheus metrics (/metrics).
health_checks {
    listener_enabled = true
    bind_address = {{q .Bind}}
    bind_port = {{.HealthPort}}
}
{{- end}}
{{- if .Cmd}}
cmd = {{q .Cmd}}
cmd_args = {{q .CmdArgs}}
{{- if not .Gateway}}
# librdkafka (DeepStream's Kafka client) never reloads certificates, so the
# pipeline restarts on rotation; it starts only once its first SVID is on disk.
on_rotate = "restart"
{{- else}}
# The pipeline's Kafka client goes through the local gateway below, which
# holds the current SVID: no restart on rotation. It starts only once its
# first SVID is on disk.
{{- end}}
hold_until_svid = true
restart_on_exit = true
{{- end}}
{{- with .Gateway}}

# Edge-mode Kafka gateway: the app speaks plaintext to 127.0.0.1:{{.Port}}, the
# gateway speaks SPIFFE mTLS to the cloud gateway with the current SVID and
# moves long-lived upstream connections to a new SVID within max_conn_lifetime.
kafka_gateway {{q .Name}} {
    upstreams = [{{q .Upstream}}]
    upstream_spiffe_ids = [{{q .UpstreamID}}]
    port_min = {{.Port}}
    port_max = {{.Port}}
    max_conn_lifetime = {{q .MaxConnLifetime}}
{{- with .Encrypt}}

    # Record encryption (kafka.encryption): values of these topics are
    # sealed on Produce and opened on Fetch, with data keys from Vault
    # Transit; the gateway logs in with this workload's SVID (cert auth).
    encrypt {
        topics = [{{list .Topics}}]
{{- if .KeyRing}}
        key_ring = {{q .KeyRing}}
{{- end}}
{{- with .KeyRings}}
        key_rings = {
{{- range .}}
            {{q .Pattern}} = {{q .Ring}}
{{- end}}
        }
{{- end}}
        vault_address = {{q .VaultAddress}}
{{- if .VaultCAFile}}
        vault_ca_file = {{q .VaultCAFile}}
{{- end}}
        cert_auth_mount = {{q .CertAuthMount}}
        cert_role = {{q .CertRole}}
        transit_mount = {{q .TransitMount}}
        undecryptable = {{q .Undecryptable}}
        plaintext = {{q .Plaintext}}
{{- if .QuarantineDir}}
        quarantine_dir = {{q .QuarantineDir}}
{{- end}}
    }
{{- end}}
}
{{- end}}

# Kafka client configs, rewritten on every rotation: librdkafka properties
# and DeepStream's cfg_kafka.txt (which the pipeline config names).
kafka {
{{- if .Gateway}}
    # bootstrap.servers is the local gateway, security.protocol=plaintext.
    gateway = {{q .Gateway.Name}}
{{- else}}
    bootstrap_servers = {{q .Kafka}}
    endpoint_identification_algorithm = {{q .EndpointID}}
{{- end}}
    librdkafka_file_name = "kafka.properties"
    deepstream_file_name = "cfg_kafka.txt"
{{- if and .KafkaIPv4 (not .Gateway)}}
    # The broker is "localhost" (its SVID's name) and listens on 127.0.0.1.
    librdkafka_properties = { "broker.address.family" = "v4" }
    deepstream_properties = { "broker.address.family" = "v4" }
{{- end}}
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

func (b *builder) renderHelper(h *Host, agent Service, w topology.Workload, a helperArgs) []byte {
	quoted := make([]string, len(a.args))
	for i, arg := range a.args {
		quoted[i] = shellQuote(arg)
	}
	return execute(helperTmpl, helperData{
		commonData: b.common(),
		Workload:   w.Name, ID: a.id, AgentAddress: agent.Socket, CertDir: a.certDir,
		Cmd: a.cmd, CmdArgs: strings.Join(quoted, " "),
		Kafka: a.kafka, EndpointID: b.top.Kafka.EndpointIdentification, KafkaIPv4: b.kafkaIPv4,
		Tunnels: b.tunnelsOf(w.Name, h), Obs: a.obs, Gateway: a.gateway,
	})
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
