package topology

import (
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// File is the HCL schema of a topology file, as decoded. Parse turns it into
// a validated Topology.
type File struct {
	TrustDomain string         `hcl:"trust_domain"`
	Vault       *VaultBlock    `hcl:"vault,block"`
	Cloud       *CloudBlock    `hcl:"cloud,block"`
	KubeEdge    *KubeEdgeBlock `hcl:"kubeedge,block"`
	Sites       []*SiteBlock   `hcl:"site,block"`
	Kafka       *KafkaBlock    `hcl:"kafka,block"`
	Tunnels     []*TunnelBlock `hcl:"tunnel,block"`
	Users       *UsersBlock    `hcl:"users,block"`
	// Observability configures metrics, health and logs everywhere.
	Observability *ObservabilityBlock `hcl:"observability,block"`

	TrustDomainRange hcl.Range `hcl:"trust_domain,attr_range"`
}

// ObservabilityBlock is the `observability { }` block: the metrics and
// health listeners of every SPIRE server and agent, helper and Vault, and
// the log format of every component.
type ObservabilityBlock struct {
	// Metrics turns the Prometheus and health listeners on (default true).
	Metrics *bool `hcl:"metrics,optional"`
	// BindAddress is where they listen (default 127.0.0.1: a Prometheus
	// on the same host). Set the host's address to scrape from elsewhere.
	BindAddress string `hcl:"bind_address,optional"`
	// LogFormat is "text" (default) or "json", for every component.
	LogFormat string `hcl:"log_format,optional"`
	// FleetStatus makes every host's status endpoint (served by `edgeid
	// supervise`, mTLS for the orchestrator's SVID only) listen on the
	// host's address, so that `edgeid status --fleet` on the cloud host
	// reaches it; off (the default), it listens on loopback.
	FleetStatus *bool `hcl:"fleet_status,optional"`
	// StatusPort is that endpoint's port on real hosts (default
	// DefaultStatusPort).
	StatusPort *int `hcl:"status_port,optional"`

	DefRange         hcl.Range `hcl:",def_range"`
	BindAddressRange hcl.Range `hcl:"bind_address,attr_range"`
	LogFormatRange   hcl.Range `hcl:"log_format,attr_range"`
	FleetStatusRange hcl.Range `hcl:"fleet_status,attr_range"`
	StatusPortRange  hcl.Range `hcl:"status_port,attr_range"`
}

// VaultBlock is the `vault { }` block.
type VaultBlock struct {
	// Mode is "managed" (edgeid starts and bootstraps a Vault) or
	// "external" (the company's Vault, already bootstrapped).
	Mode string `hcl:"mode,optional"`
	// Address of an external Vault.
	Address string `hcl:"address,optional"`
	// CACert verifies an external Vault's TLS certificate.
	CACert string `hcl:"ca_cert,optional"`
	// PKIMount and PKIIntMount are the root and intermediate PKI mounts.
	PKIMount    string `hcl:"pki_mount,optional"`
	PKIIntMount string `hcl:"pki_int_mount,optional"`
	// KVMount holds the JWT authorities shared by the cloud servers.
	KVMount string `hcl:"kv_mount,optional"`
	// RoleIDFile and SecretIDFile hold the AppRole login of the cloud
	// servers for an external Vault (written by `edgeid bootstrap vault`).
	RoleIDFile   string `hcl:"role_id_file,optional"`
	SecretIDFile string `hcl:"secret_id_file,optional"`
	// Host is where a managed Vault runs; defaults to the cloud host.
	Host string `hcl:"host,optional"`
	// UnsealCustodians are the age recipients (age1...) of the people who
	// keep a managed Vault's key shares, one share each: the unseal
	// shares, or the recovery shares with seal_transit. Their identities
	// never come near the Vault host.
	UnsealCustodians []string `hcl:"unseal_custodians,optional"`
	// UnsealThreshold is how many custodians' shares unseal Vault (or,
	// with seal_transit, authorise a root token).
	UnsealThreshold int `hcl:"unseal_threshold,optional"`
	// SealTransit makes a managed Vault unseal itself with another Vault's
	// Transit engine.
	SealTransit *SealTransitBlock `hcl:"seal_transit,block"`

	DefRange              hcl.Range `hcl:",def_range"`
	ModeRange             hcl.Range `hcl:"mode,attr_range"`
	UnsealCustodiansRange hcl.Range `hcl:"unseal_custodians,attr_range"`
	UnsealThresholdRange  hcl.Range `hcl:"unseal_threshold,attr_range"`
}

// SealTransitBlock is the `seal_transit { }` block of `vault { }`: Vault's
// seal "transit" stanza, with the token read from a file on the Vault host.
type SealTransitBlock struct {
	// Address is the unsealer Vault's API address.
	Address string `hcl:"address"`
	// Mount is the unsealer's Transit mount (default "transit").
	Mount string `hcl:"mount,optional"`
	// KeyName is the Transit key that wraps this Vault's root key.
	KeyName string `hcl:"key_name"`
	// TokenFile is an absolute path on the Vault host of a file holding a
	// token allowed only to encrypt and decrypt with KeyName.
	TokenFile string `hcl:"token_file"`
	// CACert is an absolute path on the Vault host of the CA bundle that
	// verifies the unseal Vault's TLS certificate.
	CACert string `hcl:"ca_cert,optional"`
	// DisableRenewal stops Vault from renewing the token (for a periodic
	// token renewed elsewhere).
	DisableRenewal bool `hcl:"disable_renewal,optional"`

	DefRange       hcl.Range `hcl:",def_range"`
	AddressRange   hcl.Range `hcl:"address,attr_range"`
	MountRange     hcl.Range `hcl:"mount,attr_range"`
	KeyNameRange   hcl.Range `hcl:"key_name,attr_range"`
	TokenFileRange hcl.Range `hcl:"token_file,attr_range"`
	CACertRange    hcl.Range `hcl:"ca_cert,attr_range"`
}

// CloudBlock is the `cloud { }` block: the cloud SPIRE servers.
type CloudBlock struct {
	Servers     int    `hcl:"servers,optional"`
	Datastore   string `hcl:"datastore,optional"`
	PostgresDSN string `hcl:"postgres_dsn,optional"`
	CATTL       string `hcl:"ca_ttl,optional"`
	X509SVIDTTL string `hcl:"x509_svid_ttl,optional"`
	// Hosts lists the host name of each cloud server; defaults to
	// "cloud", "cloud-2", ...
	Hosts []string `hcl:"hosts,optional"`
	// Address is how agents reach the cloud servers: a DNS name or load
	// balancer in front of them (host:port). Empty means the first server.
	Address string `hcl:"address,optional"`
	Port    int    `hcl:"port,optional"`

	DefRange         hcl.Range `hcl:",def_range"`
	ServersRange     hcl.Range `hcl:"servers,attr_range"`
	DatastoreRange   hcl.Range `hcl:"datastore,attr_range"`
	CATTLRange       hcl.Range `hcl:"ca_ttl,attr_range"`
	X509SVIDTTLRange hcl.Range `hcl:"x509_svid_ttl,attr_range"`
	PortRange        hcl.Range `hcl:"port,attr_range"`
}

// KubeEdgeBlock is the `kubeedge { }` block: how edge nodes attest.
type KubeEdgeBlock struct {
	// Cluster names the KubeEdge cluster in agent IDs.
	Cluster string `hcl:"cluster,optional"`
	// CACert is cloudcore's CA (rootCA.crt). Empty in the embedded mode,
	// where the orchestrator plays cloudcore's CA.
	CACert string `hcl:"ca_cert,optional"`
	// NodeCertPath and NodeKeyPath locate each node's edgecore client
	// certificate and key on real hosts.
	NodeCertPath string `hcl:"node_cert_path,optional"`
	NodeKeyPath  string `hcl:"node_key_path,optional"`
	// Kubeconfig is the absolute path, on every SPIRE server host, of a
	// kubeconfig for the Kubernetes Node check. `edgeid render` then makes
	// the check required; the embedded `edgeid up` has no API server and
	// ignores it.
	Kubeconfig string `hcl:"kubeconfig,optional"`

	DefRange        hcl.Range `hcl:",def_range"`
	KubeconfigRange hcl.Range `hcl:"kubeconfig,attr_range"`
}

// UsersBlock is the `users { }` block: the Unix accounts edgeid's processes
// run as. A value is a user name (resolved on each host) or a decimal uid
// (needs no passwd entry; its gid is the same number).
type UsersBlock struct {
	// Control runs Vault, the SPIRE servers and agents, and owns their
	// keys and admin sockets. Default "61000".
	Control string `hcl:"control,optional"`
	// KafkaDemo runs the demo Kafka broker. Default "61001".
	KafkaDemo string `hcl:"kafka_demo,optional"`
	// KafkaGateway runs the cloud Kafka gateway in front of the demo
	// broker: an account of its own, so that neither can be issued the
	// other's SVID. Default "61002".
	KafkaGateway string `hcl:"kafka_gateway,optional"`
	// WorkloadUIDBase numbers the workloads that name no user: the i-th
	// workload of the file (0-based, across sites) runs as base+i.
	// Default 61100.
	WorkloadUIDBase *int `hcl:"workload_uid_base,optional"`

	DefRange             hcl.Range `hcl:",def_range"`
	ControlRange         hcl.Range `hcl:"control,attr_range"`
	KafkaDemoRange       hcl.Range `hcl:"kafka_demo,attr_range"`
	KafkaGatewayRange    hcl.Range `hcl:"kafka_gateway,attr_range"`
	WorkloadUIDBaseRange hcl.Range `hcl:"workload_uid_base,attr_range"`
}

// SiteBlock is a `site "<name>" { }` block: one edge site.
type SiteBlock struct {
	Name        string           `hcl:"name,label"`
	CATTL       string           `hcl:"ca_ttl,optional"`
	X509SVIDTTL string           `hcl:"x509_svid_ttl,optional"`
	ServerNode  string           `hcl:"server_node,optional"`
	Port        int              `hcl:"port,optional"`
	Nodes       []*NodeBlock     `hcl:"node,block"`
	Workloads   []*WorkloadBlock `hcl:"workload,block"`

	DefRange         hcl.Range `hcl:",def_range"`
	NameRange        hcl.Range `hcl:"name,label_range"`
	CATTLRange       hcl.Range `hcl:"ca_ttl,attr_range"`
	X509SVIDTTLRange hcl.Range `hcl:"x509_svid_ttl,attr_range"`
	ServerNodeRange  hcl.Range `hcl:"server_node,attr_range"`
	PortRange        hcl.Range `hcl:"port,attr_range"`
}

// NodeBlock is a `node "<kubeedge node name>" { }` block inside a site.
type NodeBlock struct {
	Name    string            `hcl:"name,label"`
	Address string            `hcl:"address,optional"`
	Labels  map[string]string `hcl:"labels,optional"`

	DefRange  hcl.Range `hcl:",def_range"`
	NameRange hcl.Range `hcl:"name,label_range"`
}

// WorkloadBlock is a `workload "<name>" { }` block inside a site.
type WorkloadBlock struct {
	Name string `hcl:"name,label"`
	// Kind is "deepstream", "edgehub", "eventbus" or "app".
	Kind string `hcl:"kind,optional"`
	// Node is the KubeEdge node the workload runs on.
	Node string `hcl:"node,optional"`
	// Config is the DeepStream app config (deepstream kind).
	Config string `hcl:"config,optional"`
	// App is the executable name (default deepstream-test5-app for
	// deepstream workloads).
	App string `hcl:"app,optional"`
	// Topics the workload publishes to; for DeepStream they are read from
	// its config when omitted.
	Topics []string `hcl:"topics,optional"`
	// Command and Args run the workload under edgeid-helper.
	Command string   `hcl:"command,optional"`
	Args    []string `hcl:"args,optional"`
	// Selectors adds registration selectors ("type:value").
	Selectors []string `hcl:"selectors,optional"`
	// X509SVIDTTL overrides the site's SVID TTL for this workload.
	X509SVIDTTL string `hcl:"x509_svid_ttl,optional"`
	// User is the account the workload (its helper and its app) runs as:
	// a user name or a decimal uid. Default: users.workload_uid_base plus
	// the workload's position in the file.
	User string `hcl:"user,optional"`
	// ExeSHA256 is the SHA-256 of the DeepStream app binary, for hosts
	// that register the workload's entry without the binary at hand;
	// otherwise it is computed from the binary.
	ExeSHA256 string `hcl:"exe_sha256,optional"`

	DefRange         hcl.Range `hcl:",def_range"`
	NameRange        hcl.Range `hcl:"name,label_range"`
	KindRange        hcl.Range `hcl:"kind,attr_range"`
	NodeRange        hcl.Range `hcl:"node,attr_range"`
	ConfigRange      hcl.Range `hcl:"config,attr_range"`
	X509SVIDTTLRange hcl.Range `hcl:"x509_svid_ttl,attr_range"`
	SelectorsRange   hcl.Range `hcl:"selectors,attr_range"`
	UserRange        hcl.Range `hcl:"user,attr_range"`
	ExeSHA256Range   hcl.Range `hcl:"exe_sha256,attr_range"`
}

// KafkaBlock is the `kafka { }` block.
type KafkaBlock struct {
	// Mode is "demo" (edgeid runs a TLS broker on the cloud host) or
	// "external" (the user's cluster, at Brokers).
	Mode    string   `hcl:"mode,optional"`
	Brokers []string `hcl:"brokers,optional"`
	Port    int      `hcl:"port,optional"`
	// EndpointIdentification is librdkafka's
	// ssl.endpoint.identification.algorithm: "https" for a real cluster
	// whose broker SVIDs carry DNS SANs, "none" for the demo broker.
	EndpointIdentification string `hcl:"endpoint_identification,optional"`
	// AllowedSPIFFEIDs are the client IDs the demo broker accepts; empty
	// means every workload of the trust domain.
	AllowedSPIFFEIDs []string `hcl:"allowed_spiffe_ids,optional"`
	// Encryption turns on record encryption by the edge gateways.
	Encryption *EncryptionBlock `hcl:"encryption,block"`

	DefRange  hcl.Range `hcl:",def_range"`
	ModeRange hcl.Range `hcl:"mode,attr_range"`
	PortRange hcl.Range `hcl:"port,attr_range"`
}

// EncryptionBlock is the `encryption { }` block of `kafka { }`: record
// values of the topics it names are sealed by each pipeline's edge gateway
// with data keys from Vault Transit (helper/kafkagw README, "Record
// encryption"); the Vault side is set up by the bootstrap.
type EncryptionBlock struct {
	// Topics are topic names, or prefixes written "site-a.*".
	Topics []string `hcl:"topics"`
	// KeyRings maps an entry of Topics to its Transit key ring; a name
	// defaults to itself, a prefix needs one.
	KeyRings map[string]string `hcl:"key_rings,optional"`
	// Undecryptable is "quarantine" (default) or "pass".
	Undecryptable string `hcl:"undecryptable,optional"`
	// Plaintext is "allow" (default) or "quarantine".
	Plaintext string `hcl:"plaintext,optional"`
	// TransitMount and CertAuthMount are Vault's mounts (default
	// "transit" and "cert").
	TransitMount  string `hcl:"transit_mount,optional"`
	CertAuthMount string `hcl:"cert_auth_mount,optional"`
	// TokenTTL is the life of a gateway's Vault token (default "15m").
	TokenTTL string `hcl:"token_ttl,optional"`
	// Consumers are SPIFFE IDs (cloud consumers) that may decrypt every
	// key ring.
	Consumers []string `hcl:"consumers,optional"`
	// Rewrappers are SPIFFE IDs (operators) that may have Vault re-wrap
	// the data keys of every key ring (edgeid kafka rewrap), never see one.
	Rewrappers []string `hcl:"rewrappers,optional"`

	DefRange           hcl.Range `hcl:",def_range"`
	TopicsRange        hcl.Range `hcl:"topics,attr_range"`
	KeyRingsRange      hcl.Range `hcl:"key_rings,attr_range"`
	UndecryptableRange hcl.Range `hcl:"undecryptable,attr_range"`
	PlaintextRange     hcl.Range `hcl:"plaintext,attr_range"`
	TransitMountRange  hcl.Range `hcl:"transit_mount,attr_range"`
	CertAuthMountRange hcl.Range `hcl:"cert_auth_mount,attr_range"`
	TokenTTLRange      hcl.Range `hcl:"token_ttl,attr_range"`
	ConsumersRange     hcl.Range `hcl:"consumers,attr_range"`
	RewrappersRange    hcl.Range `hcl:"rewrappers,attr_range"`
}

// TunnelBlock is a `tunnel "<name>" { }` block: a SPIFFE mTLS tunnel run by
// a workload's edgeid-helper.
type TunnelBlock struct {
	Name string `hcl:"name,label"`
	// Site and Workload name the helper that runs the tunnel.
	Site     string `hcl:"site"`
	Workload string `hcl:"workload"`
	// Mode is "client" or "server".
	Mode             string   `hcl:"mode"`
	Listen           string   `hcl:"listen"`
	Target           string   `hcl:"target"`
	AllowedSPIFFEIDs []string `hcl:"allowed_spiffe_ids"`

	DefRange    hcl.Range `hcl:",def_range"`
	NameRange   hcl.Range `hcl:"name,label_range"`
	ModeRange   hcl.Range `hcl:"mode,attr_range"`
	ListenRange hcl.Range `hcl:"listen,attr_range"`
	SiteRange   hcl.Range `hcl:"site,attr_range"`
}

// Topology is a parsed and validated topology with defaults applied.
type Topology struct {
	// Path is the file it was read from; Dir is its directory, against
	// which relative paths in it resolve.
	Path        string
	Dir         string
	TrustDomain string
	Vault       Vault
	Cloud       Cloud
	KubeEdge    KubeEdge
	Sites       []Site
	Kafka       Kafka
	Tunnels     []Tunnel
	Users       Users
	// Observability is the validated observability block.
	Observability Observability
}

// Observability is the validated observability block.
type Observability struct {
	Metrics     bool
	BindAddress string
	LogFormat   string
	// FleetStatus binds each host's status endpoint to the host's
	// address (else loopback); StatusPort is its port on real hosts.
	FleetStatus bool
	StatusPort  int
}

// Default ports of the metrics and health listeners on a real host; an
// embedded run picks free ones. A host's helpers take consecutive ports
// from DefaultHelperHealthPort.
const (
	DefaultServerMetricsPort = 9988
	DefaultServerHealthPort  = 8080
	DefaultAgentMetricsPort  = 9989
	DefaultAgentHealthPort   = 8082
	// The upstream agent of an edge server node.
	DefaultUpstreamAgentMetricsPort = 9990
	DefaultUpstreamAgentHealthPort  = 8083
	DefaultHelperHealthPort         = 8090
	// DefaultSupervisorMetricsPort is `edgeid supervise`'s /metrics.
	DefaultSupervisorMetricsPort = 9096
	// DefaultStatusPort is `edgeid supervise`'s status endpoint (GET
	// /status over SPIFFE mTLS), read by `edgeid status --fleet`.
	DefaultStatusPort = 9097
)

// Users is the validated users block.
type Users struct {
	Control      User
	KafkaDemo    User
	KafkaGateway User
}

// User names a Unix account: by name, or by number when Name is empty.
type User struct {
	Name string
	UID  int
}

// String is the name, or the decimal uid.
func (u User) String() string {
	if u.Name != "" {
		return u.Name
	}
	return strconv.Itoa(u.UID)
}

// Vault is the validated vault block.
type Vault struct {
	Managed      bool
	Address      string
	CACert       string
	PKIMount     string
	PKIIntMount  string
	KVMount      string
	RoleIDFile   string
	SecretIDFile string
	Host         string
	// UnsealCustodians and UnsealThreshold: each key share of a managed
	// Vault goes to one custodian's age recipient, and UnsealThreshold of
	// them are needed. Empty when the topology names none.
	UnsealCustodians []string
	UnsealThreshold  int
	// SealTransit is set when a managed Vault unseals itself with another
	// Vault's Transit engine.
	SealTransit *SealTransit
	// DefRange is where the vault block starts (empty without one), for
	// errors found after parsing.
	DefRange hcl.Range
}

// HasUnsealCustody reports whether a managed Vault's unseal does not rest
// on a key kept on its own host: it unseals itself from another Vault's
// Transit engine, or its shares go to custodians.
func (v Vault) HasUnsealCustody() bool {
	return v.SealTransit != nil || len(v.UnsealCustodians) > 0
}

// SealTransit is the validated seal_transit block.
type SealTransit struct {
	Address        string
	Mount          string
	KeyName        string
	TokenFile      string
	CACert         string
	DisableRenewal bool
}

// Cloud is the validated cloud block.
type Cloud struct {
	Servers     int
	Datastore   string
	PostgresDSN string
	CATTL       time.Duration
	X509SVIDTTL time.Duration
	Hosts       []string
	Address     string
	Port        int
}

// KubeEdge is the validated kubeedge block.
type KubeEdge struct {
	Cluster      string
	CACert       string
	NodeCertPath string
	NodeKeyPath  string
	Kubeconfig   string
}

// Site is a validated edge site.
type Site struct {
	Name        string
	CATTL       time.Duration
	X509SVIDTTL time.Duration
	ServerNode  string
	Port        int
	Nodes       []Node
	Workloads   []Workload
}

// Node is a validated KubeEdge node.
type Node struct {
	Name    string
	Address string
	Labels  map[string]string
}

// Workload is a validated workload.
type Workload struct {
	Name        string
	Kind        string
	Node        string
	Config      string
	App         string
	Topics      []string
	Command     string
	Args        []string
	Selectors   []string
	X509SVIDTTL time.Duration
	// User is the account the workload runs as.
	User User
	// ExeSHA256 is the app binary's SHA-256 when the file gives it.
	ExeSHA256 string
}

// Kafka is the validated kafka block.
type Kafka struct {
	Demo                   bool
	Brokers                []string
	Port                   int
	EndpointIdentification string
	AllowedSPIFFEIDs       []string
	// Encryption is nil unless the kafka block has an encryption block.
	Encryption *Encryption
}

// Tunnel is a validated tunnel.
type Tunnel struct {
	Name             string
	Site             string
	Workload         string
	Mode             string
	Listen           string
	Target           string
	AllowedSPIFFEIDs []string
}
