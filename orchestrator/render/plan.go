package render

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/edgeid/edgeid/orchestrator/topology"
)

// Binary is a program on the target host, with its SHA-256 for
// plugin_checksum (empty for programs that are not SPIRE plugins).
type Binary struct {
	Path     string
	Checksum string
}

// Binaries are the programs a plan runs, as paths on the target hosts.
type Binaries struct {
	SpireServer string
	SpireAgent  string
	Vault       string
	Edgeid      string
	Helper      string
	// Prometheus, when set, runs in an embedded run with metrics on.
	Prometheus string

	VaultPKI       Binary
	KubeEdgeServer Binary
	KubeEdgeAgent  Binary
	DeepStream     Binary
}

// Env says where and how the plan runs.
type Env struct {
	// Embedded is true for `edgeid up` on one machine: every host is a
	// directory under the run directory and listens on 127.0.0.1.
	Embedded bool
	// HostRoot returns the directory under which a host's configs, data
	// and sockets live.
	HostRoot func(host string) string
	// HostAddr returns the address other hosts reach host at.
	HostAddr func(host string) string
	// Port returns the port of the service key on host (def is the
	// topology's port); embedded mode allocates free ones.
	Port func(host, key string, def int) int
	// Bins are the programs on the hosts.
	Bins Binaries
	// LookupUser resolves a user name of the topology's users on this
	// host (os/user in the runner); numeric users need none.
	LookupUser func(name string) (uid, gid int, err error)
	// HashFile returns a file's hex SHA-256 (FileSHA256 when nil): the
	// DeepStream app binaries, for deepstream:exe_sha256.
	HashFile func(path string) (string, error)
	// VaultAddr, VaultCACert, RoleIDFile and SecretIDFile locate the Vault
	// and the AppRole login of the cloud servers, as paths on the cloud
	// hosts.
	VaultAddr    string
	VaultCACert  string
	RoleIDFile   string
	SecretIDFile string
	// KubeEdgeCA is the path, on servers, of cloudcore's CA bundle.
	KubeEdgeCA string
	// NodeCert and NodeKey, when set, override the topology's paths of
	// the edgecore certificate and key (one host's non-standard layout).
	NodeCert string
	NodeKey  string
	// InsecureLocalUnseal lets a real-host managed Vault keep its unseal
	// share encrypted to an identity on its own host, as the embedded run
	// does: for throw-away demos only (the docker compose setup). Real
	// deployments use custodians or Transit auto-unseal.
	InsecureLocalUnseal bool
	// UnsealRecipient is the age recipient a managed Vault's unseal share
	// is encrypted to.
	UnsealRecipient string
	// OrchestratorAccount and OrchestratorExe are the account and the
	// program of edgeid itself (`supervise`, `status --fleet`), which the
	// entries of the status endpoints' identities pin: root (the zero
	// Account) and Bins.Edgeid unless set.
	OrchestratorAccount Account
	OrchestratorExe     string
	// PostgresDSN is the datastore of HA cloud servers.
	PostgresDSN string
	// Now stamps generated files; tests fix it.
	Now time.Time
}

// Plan is everything that runs for a topology.
type Plan struct {
	TrustDomain string
	Hosts       []*Host
	// Entries are the registration entries, per SPIRE server.
	Entries []Entry
	// Orchestrator is the identity `edgeid status --fleet` uses, on the
	// cloud host.
	Orchestrator *Orchestrator
}

// Host is one machine of the topology.
type Host struct {
	Name string
	Root string
	Addr string
	// Roles says what the host is: "cloud", "vault", "edge-server", "edge-node".
	Roles []string
	// Dirs are made before Files are written, in order.
	Dirs     []Dir
	Files    []File
	Services []Service
	// SupervisorMetrics is where `edgeid supervise` on this host serves
	// its /metrics (host:port; empty when metrics are off), and
	// SupervisorMetricsURL where Prometheus scrapes it.
	SupervisorMetrics    string
	SupervisorMetricsURL string
	// Status is the host's status endpoint (nil on a host without a
	// Workload API agent).
	Status *StatusEndpoint
}

// File is a file a host needs, at Path (absolute on the host).
type File struct {
	Path    string
	Content []byte
	Mode    os.FileMode
	// Owner owns the file; root (the zero Account) unless a service must
	// read or write it as its own.
	Owner Account
	// Group, when not root, is the file's group instead of Owner's: a
	// workload reads its root-owned configs (0640) through it and cannot
	// change them.
	Group Account
}

// Service is a long-running process of a host.
// ServiceKind is what a service is.
type ServiceKind string

// The kinds of service a plan holds.
const (
	KindVault       ServiceKind = "vault"
	KindSpireServer ServiceKind = "spire-server"
	// KindSpireAgent is every agent: the cloud host's, an edge server
	// node's upstream agent, an edge node's.
	KindSpireAgent ServiceKind = "spire-agent"
	KindKafka      ServiceKind = "kafka"
	// KindKafkaGateway is the cloud-mode Kafka gateway in front of the
	// demo broker (edgeid kafka-gateway).
	KindKafkaGateway ServiceKind = "kafka-gateway"
	// KindHelper is a workload's edgeid-helper (and the app it runs).
	KindHelper ServiceKind = "helper"
	// KindPrometheus scrapes every service's metrics (embedded runs).
	KindPrometheus ServiceKind = "prometheus"
)

type Service struct {
	// Name is unique per host: vault, spire-server, spire-agent,
	// upstream-agent, kafka, kafka-gateway, helper-<workload>.
	Name string
	// Kind says what the service is and how to check its readiness.
	Kind ServiceKind
	Argv []string
	// Account is the Unix account the service runs as.
	Account Account
	// Caps are the capabilities the service keeps (ambient), e.g.
	// CapSysPtrace for agents that attest other accounts' processes.
	Caps []string
	// Socket is the admin (server) or Workload API (agent) socket.
	Socket string
	// Addr is the host:port the service listens on, when it does.
	Addr string
	// URL is how clients reach the service, for a managed Vault.
	URL string
	// Site is the edge site of edge services.
	Site string
	// Workload is the workload a helper serves.
	Workload string
	// DataDir is the service's state directory.
	DataDir string
	// BundlePath is where an agent's bootstrap bundle goes.
	BundlePath string
	// AgentID is the SPIFFE ID an agent gets.
	AgentID string
	// Server names the service (host/name) an agent attests to or a
	// server chains to.
	Server string
	// NodeCert and NodeKey are a KubeEdge node's credentials for an agent.
	NodeCert string
	NodeKey  string
	// ReadyFile, for helpers, appears once the first SVID is written.
	ReadyFile string
	// Needs are files made on another host that the operator copies to
	// the same paths here before the service can start (a second cloud
	// server's Vault login); NeedsFrom names that host.
	Needs     []string
	NeedsFrom string
	// MetricsURL is where Prometheus scrapes the service, and HealthURL
	// its readiness endpoint. Empty when the topology turns metrics off or
	// the service has none.
	MetricsURL string
	HealthURL  string
}

// Entry is a registration entry, created through the named server.
type Entry struct {
	// Server is the service (host/name) whose datastore holds it.
	Server     string
	ParentID   string
	SPIFFEID   string
	Selectors  []string
	X509TTL    time.Duration
	Downstream bool
	DNSNames   []string
	// Site and Workload say what the entry is for, in status output.
	Site     string
	Workload string
}

// ConfigPlaceholder, in a DeepStream workload's args, stands for the path of
// its rendered pipeline config on the host.
const ConfigPlaceholder = "{config}"

// Ref names a service of a host, "host/service".
func Ref(host, service string) string { return host + "/" + service }

// Host returns the named host of the plan.
func (p *Plan) Host(name string) *Host {
	for _, h := range p.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Service returns the service named by ref ("host/service").
func (p *Plan) Service(ref string) (*Host, *Service) {
	host, name, _ := strings.Cut(ref, "/")
	h := p.Host(host)
	if h == nil {
		return nil, nil
	}
	for i := range h.Services {
		if h.Services[i].Name == name {
			return h, &h.Services[i]
		}
	}
	return h, nil
}

// AgentID is the SPIFFE ID of a KubeEdge node's agent.
func AgentID(td, cluster, node string) string {
	return fmt.Sprintf("spiffe://%s/spire/agent/kubeedge/%s/%s", td, cluster, node)
}

// EdgeServerID is the SPIFFE ID of a site's edge SPIRE server.
func EdgeServerID(td, site string) string {
	return fmt.Sprintf("spiffe://%s/edge/%s/spire-server", td, site)
}

// WorkloadID is the SPIFFE ID of an edge workload.
func WorkloadID(td, site, workload string) string {
	return fmt.Sprintf("spiffe://%s/edge/%s/%s", td, site, workload)
}

// CloudID is the SPIFFE ID of a cloud workload.
func CloudID(td, app string) string {
	return fmt.Sprintf("spiffe://%s/cloud/%s", td, app)
}

// workloadDir turns a workload name ("deepstream/cam-pipeline") into one
// path segment.
func workloadDir(name string) string { return strings.ReplaceAll(name, "/", "_") }

// Build computes the plan of top in env.
func Build(top *topology.Topology, env Env) (*Plan, error) {
	b := &builder{top: top, env: env, plan: &Plan{TrustDomain: top.TrustDomain}, hosts: map[string]*Host{}, topics: map[string]bool{}}
	if b.env.HashFile == nil {
		b.env.HashFile = FileSHA256
	}
	var err error
	if b.control, err = b.account(top.Users.Control); err != nil {
		return nil, fmt.Errorf("render: users.control: %w", err)
	}
	if top.Kafka.Demo {
		if b.kafka, err = b.account(top.Users.KafkaDemo); err != nil {
			return nil, fmt.Errorf("render: users.kafka_demo: %w", err)
		}
		if b.gatewayUser, err = b.account(top.Users.KafkaGateway); err != nil {
			return nil, fmt.Errorf("render: users.kafka_gateway: %w", err)
		}
	}
	if err := b.build(); err != nil {
		return nil, err
	}
	if err := b.addEntryFiles(); err != nil {
		return nil, err
	}
	sort.SliceStable(b.plan.Hosts, func(i, j int) bool { return hostOrder(b.plan.Hosts[i]) < hostOrder(b.plan.Hosts[j]) })
	return b.plan, nil
}

// noCustodyError refuses a managed Vault on real hosts whose unseal would
// rest on a key kept on its own host, and names both ways out.
func noCustodyError(top *topology.Topology) error {
	where := top.Path
	if r := top.Vault.DefRange; r.Filename != "" {
		where = fmt.Sprintf("%s:%d,%d", r.Filename, r.Start.Line, r.Start.Column)
	}
	return fmt.Errorf("render: %s: vault: a managed Vault on real hosts must not keep what unseals it on its own host, where whoever reads the host's files could unseal it and make a root token; set one of "+
		"vault.seal_transit { address, key_name, token_file } (Vault unseals itself with another Vault's Transit engine) or "+
		"vault.unseal_custodians = [\"age1...\", ...] with vault.unseal_threshold (each key share encrypted to a custodian whose age identity stays off the host); "+
		"only the embedded `edgeid up` (one machine, dev only) keeps a local unseal key", where)
}

// hostOrder keeps cloud hosts first, then edge hosts in topology order.
func hostOrder(h *Host) int {
	for _, r := range h.Roles {
		if r == "cloud" || r == "vault" {
			return 0
		}
	}
	return 1
}
