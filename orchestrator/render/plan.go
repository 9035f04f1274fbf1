package render

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	// KindHelper is a workload's edgeid-helper (and the app it runs).
	KindHelper ServiceKind = "helper"
)

type Service struct {
	// Name is unique per host: vault, spire-server, spire-agent,
	// upstream-agent, kafka, helper-<workload>.
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

type builder struct {
	top   *topology.Topology
	env   Env
	plan  *Plan
	hosts map[string]*Host
	// topics collects what the DeepStream pipelines publish to, as
	// buildWorkload reads it from their configs.
	topics map[string]bool
	// control runs Vault and SPIRE; kafka the demo broker.
	control, kafka Account
}

func (b *builder) host(name string) *Host {
	if h, ok := b.hosts[name]; ok {
		return h
	}
	h := &Host{Name: name, Root: b.env.HostRoot(name), Addr: b.env.HostAddr(name)}
	b.hosts[name] = h
	b.plan.Hosts = append(b.plan.Hosts, h)
	b.layout(h)
	return h
}

// layout gives a host its directories. Root owns what only edgeid changes;
// the control account owns SPIRE's and Vault's state, keys and admin
// sockets (0700), which no workload reaches; a workload reaches only
// run/public (the agents' Workload API) and its own directory.
func (b *builder) layout(h *Host) {
	root := Account{}
	for _, d := range []Dir{
		{h.Root, 0o755, root},
		{h.path("run"), 0o755, root},
		{h.path(PublicSocketDir), 0o755, b.control},
		{h.path(PrivateSocketDir), 0o700, b.control},
		{h.path("pids"), 0o755, root},
		{h.path("logs"), 0o700, root},
		{h.path("spire"), 0o700, b.control},
		{h.path("kubeedge"), 0o700, b.control},
		{h.path("kubeedge", "ca"), 0o700, b.control},
		{h.path("kubeedge", "certs"), 0o700, b.control},
		{h.path("workloads"), 0o755, root},
	} {
		h.addDir(d.Path, d.Mode, d.Owner)
	}
}

func (h *Host) addRole(role string) {
	for _, r := range h.Roles {
		if r == role {
			return
		}
	}
	h.Roles = append(h.Roles, role)
}

func (h *Host) path(parts ...string) string {
	return filepath.Join(append([]string{h.Root}, parts...)...)
}

// Socket directories under a host's root. Workloads are given PublicSocketDir
// (the agents' Workload API) and nothing else: the servers' admin sockets
// and the upstream agent that serves an edge server its CA identity stay in
// PrivateSocketDir, which only edgeid's own services reach.
const (
	PublicSocketDir  = "run/public"
	PrivateSocketDir = "run/private"
)

// publicSocket and privateSocket return a socket path in those directories.
func (h *Host) publicSocket(name string) string  { return h.path(PublicSocketDir, name) }
func (h *Host) privateSocket(name string) string { return h.path(PrivateSocketDir, name) }

// addFile adds a root-owned file.
func (h *Host) addFile(path string, content []byte, mode os.FileMode) {
	h.Files = append(h.Files, File{Path: path, Content: content, Mode: mode})
}

// addOwnedFile adds a file that owner reads (and may change).
func (h *Host) addOwnedFile(path string, content []byte, mode os.FileMode, owner Account) {
	h.Files = append(h.Files, File{Path: path, Content: content, Mode: mode, Owner: owner})
}

// addGroupFile adds a root-owned file that group reads (0640) and cannot
// change.
func (h *Host) addGroupFile(path string, content []byte, group Account) {
	h.Files = append(h.Files, File{Path: path, Content: content, Mode: 0o640, Group: group})
}

// addService adds a service and its data directory (0700, owned by the
// service's account).
func (h *Host) addService(s Service) {
	if s.DataDir != "" {
		h.addDir(s.DataDir, 0o700, s.Account)
	}
	h.Services = append(h.Services, s)
}

func (b *builder) build() error {
	top := b.top
	cloudServers := make([]string, 0, len(top.Cloud.Hosts))
	if top.Vault.Managed && !b.env.Embedded && !b.env.InsecureLocalUnseal && !top.Vault.HasUnsealCustody() {
		return noCustodyError(top)
	}

	// Vault (managed).
	if top.Vault.Managed {
		h := b.host(top.Vault.Host)
		h.addRole("vault")
		port := b.env.Port(h.Name, "vault", 8200)
		addr := fmt.Sprintf("%s:%d", h.Addr, port)
		// Plain HTTP on the loopback of an embedded run, TLS between real
		// hosts.
		url := "https://" + addr
		if b.env.Embedded {
			url = "http://" + addr
		}
		cfg := b.renderVaultConfig(h, addr, url)
		h.addDir(h.path("vault"), 0o700, b.control)
		h.addDir(h.path("vault", "bootstrap"), 0o700, b.control)
		h.addOwnedFile(h.path("vault", "vault.hcl"), cfg, 0o600, b.control)
		// The bootstrap runs in edgeid's own process, as root.
		h.addFile(h.path("vault", "bootstrap.hcl"), b.renderBootstrap(h, url), 0o600)
		h.addService(Service{
			Name: "vault", Kind: KindVault, Addr: addr, URL: url, Account: b.control,
			Argv:    []string{b.env.Bins.Vault, "server", "-config", h.path("vault", "vault.hcl")},
			DataDir: h.path("vault", "data"),
		})
	}

	// Cloud servers.
	for i, hostName := range top.Cloud.Hosts {
		h := b.host(hostName)
		h.addRole("cloud")
		port := b.env.Port(h.Name, "spire-server", top.Cloud.Port)
		svc := Service{
			Name: "spire-server", Kind: KindSpireServer, Account: b.control,
			Addr:    fmt.Sprintf("%s:%d", h.Addr, port),
			Socket:  h.privateSocket("server.sock"),
			DataDir: h.path("spire", "server-data"),
			Argv:    []string{b.env.Bins.SpireServer, "run", "-config", h.path("spire", "server.conf")},
		}
		h.addOwnedFile(h.path("spire", "server.conf"), b.renderCloudServer(h, svc, i), 0o600, b.control)
		if top.Vault.Managed && !b.env.Embedded && hostName != top.Vault.Host {
			vh := b.host(top.Vault.Host)
			cert, _ := VaultTLSFiles(vh)
			svc.Needs = []string{cert, b.roleIDFile(vh), b.secretIDFile(vh)}
			svc.NeedsFrom = vh.Name
		}
		h.addService(svc)
		cloudServers = append(cloudServers, Ref(h.Name, svc.Name))
	}
	cloudRef := cloudServers[0]
	_, cloudSvc := b.plan.Service(cloudRef)
	cloudAddr := cloudSvc.Addr
	if top.Cloud.Address != "" {
		cloudAddr = top.Cloud.Address
	}

	// The cloud host's own agent, for cloud workloads (the Kafka broker).
	cloudHost := b.host(top.Cloud.Hosts[0])
	cloudAgent := Service{
		Name: "spire-agent", Kind: KindSpireAgent, Account: b.control, Caps: workloadAgentCaps(),
		Socket:     cloudHost.publicSocket("agent.sock"),
		DataDir:    cloudHost.path("spire", "agent-data"),
		BundlePath: cloudHost.path("spire", "bootstrap-cloud.pem"),
		AgentID:    CloudID(top.TrustDomain, "agent/"+cloudHost.Name),
		Server:     cloudRef,
		Argv:       []string{b.env.Bins.SpireAgent, "run", "-config", cloudHost.path("spire", "agent.conf")},
	}
	cloudHost.addOwnedFile(cloudHost.path("spire", "agent.conf"), b.renderJoinTokenAgent(cloudHost, cloudAgent, cloudAddr), 0o600, b.control)
	cloudHost.addService(cloudAgent)

	// Kafka demo broker on the cloud host, with its own SVID. The topics it
	// consumes are filled in once the sites' pipelines have been read.
	kafkaAddr := ""
	kafkaIndex := -1
	if top.Kafka.Demo {
		port := b.env.Port(cloudHost.Name, "kafka", top.Kafka.Port)
		kafkaAddr = fmt.Sprintf("%s:%d", cloudHost.Addr, port)
		brokerID := CloudID(top.TrustDomain, "kafka")
		cloudHost.addService(Service{
			Name: "kafka", Kind: KindKafka, Addr: kafkaAddr, Account: b.kafka,
			Argv: []string{b.env.Bins.Edgeid, "kafka-demo",
				"-listen", kafkaAddr,
				"-workload-api", "unix://" + cloudAgent.Socket,
				"-spiffe-id", brokerID,
				"-trust-domain", top.TrustDomain,
				"-topics", "", // filled in below
				"-log", cloudHost.path("kafka", "messages.log")},
			Socket:  cloudAgent.Socket,
			DataDir: cloudHost.path("kafka"),
		})
		kafkaIndex = len(cloudHost.Services) - 1
		b.plan.Entries = append(b.plan.Entries, Entry{
			Server: cloudRef, ParentID: cloudAgent.AgentID, SPIFFEID: brokerID,
			Selectors: []string{b.kafka.Selector(), "unix:path:" + b.env.Bins.Edgeid},
			X509TTL:   top.Cloud.X509SVIDTTL, DNSNames: []string{"localhost"}, Workload: "kafka",
		})
	} else {
		kafkaAddr = strings.Join(top.Kafka.Brokers, ",")
	}

	// Edge sites.
	for _, site := range top.Sites {
		if err := b.buildSite(site, cloudRef, cloudAddr, kafkaAddr); err != nil {
			return err
		}
	}
	if kafkaIndex >= 0 {
		argv := cloudHost.Services[kafkaIndex].Argv
		argv[slices.Index(argv, "-topics")+1] = strings.Join(slices.Sorted(maps.Keys(b.topics)), ",")
	}
	return nil
}

func (b *builder) buildSite(site topology.Site, cloudRef, cloudAddr, kafkaAddr string) error {
	top := b.top
	td := top.TrustDomain
	sh := b.host(site.ServerNode)
	sh.addRole("edge-server")

	// The cloud agent on the server node: it attests to the cloud with
	// the node's KubeEdge certificate and hands the edge server its
	// downstream identity.
	nodeCert, nodeKey := b.nodeCredPaths(sh)
	upstream := Service{
		Name: "upstream-agent", Kind: KindSpireAgent, Site: site.Name, Account: b.control,
		Socket:     sh.privateSocket("upstream.sock"),
		DataDir:    sh.path("spire", "upstream-agent-data"),
		BundlePath: sh.path("spire", "bootstrap-cloud.pem"),
		AgentID:    AgentID(td, top.KubeEdge.Cluster, sh.Name),
		Server:     cloudRef,
		NodeCert:   nodeCert, NodeKey: nodeKey,
		Argv: []string{b.env.Bins.SpireAgent, "run", "-config", sh.path("spire", "upstream-agent.conf")},
	}
	sh.addOwnedFile(sh.path("spire", "upstream-agent.conf"), b.renderKubeEdgeAgent(sh, upstream, cloudAddr, false), 0o600, b.control)
	sh.addService(upstream)

	port := b.env.Port(sh.Name, "spire-server", site.Port)
	edge := Service{
		Name: "spire-server", Kind: KindSpireServer, Site: site.Name, Account: b.control,
		Addr:    fmt.Sprintf("%s:%d", sh.Addr, port),
		Socket:  sh.privateSocket("server.sock"),
		DataDir: sh.path("spire", "server-data"),
		Server:  Ref(sh.Name, upstream.Name),
		Argv:    []string{b.env.Bins.SpireServer, "run", "-config", sh.path("spire", "server.conf")},
	}
	sh.addOwnedFile(sh.path("spire", "server.conf"), b.renderEdgeServer(sh, edge, upstream, cloudAddr, site), 0o600, b.control)
	sh.addService(edge)
	edgeRef := Ref(sh.Name, edge.Name)
	b.plan.Entries = append(b.plan.Entries, Entry{
		Server: cloudRef, ParentID: upstream.AgentID, SPIFFEID: EdgeServerID(td, site.Name),
		Selectors: []string{b.control.Selector(), "unix:path:" + b.env.Bins.SpireServer},
		X509TTL:   site.X509SVIDTTL, Downstream: true, Site: site.Name, Workload: "spire-server",
	})

	// Edge agents, one per node of the site.
	agents := map[string]Service{}
	for _, node := range site.Nodes {
		h := b.host(node.Name)
		h.addRole("edge-node")
		cert, key := b.nodeCredPaths(h)
		agent := Service{
			Name: "spire-agent", Kind: KindSpireAgent, Site: site.Name, Account: b.control, Caps: workloadAgentCaps(),
			Socket:     h.publicSocket("agent.sock"),
			DataDir:    h.path("spire", "agent-data"),
			BundlePath: h.path("spire", "bootstrap-site.pem"),
			AgentID:    AgentID(td, top.KubeEdge.Cluster, node.Name),
			Server:     edgeRef,
			NodeCert:   cert, NodeKey: key,
			Argv: []string{b.env.Bins.SpireAgent, "run", "-config", h.path("spire", "agent.conf")},
		}
		h.addOwnedFile(h.path("spire", "agent.conf"), b.renderKubeEdgeAgent(h, agent, edge.Addr, true), 0o600, b.control)
		h.addService(agent)
		agents[node.Name] = agent
	}

	// Workloads, each under its own edgeid-helper.
	for _, w := range site.Workloads {
		h := b.host(w.Node)
		agent := agents[w.Node]
		if err := b.buildWorkload(h, agent, site, w, kafkaAddr, edgeRef); err != nil {
			return err
		}
	}
	return nil
}

// nodeCredPaths are where a node's edgecore certificate and key live: in
// the embedded mode the orchestrator issues them into the host root.
func (b *builder) nodeCredPaths(h *Host) (string, string) {
	if b.env.Embedded {
		return h.path("kubeedge", "certs", "server.crt"), h.path("kubeedge", "certs", "server.key")
	}
	cert, key := b.top.KubeEdge.NodeCertPath, b.top.KubeEdge.NodeKeyPath
	if b.env.NodeCert != "" {
		cert = b.env.NodeCert
	}
	if b.env.NodeKey != "" {
		key = b.env.NodeKey
	}
	return cert, key
}

// workloadAgentCaps are the capabilities of an agent that attests other
// accounts' processes.
func workloadAgentCaps() []string { return []string{CapSysPtrace, CapDacReadSearch} }

func (b *builder) buildWorkload(h *Host, agent Service, site topology.Site, w topology.Workload, kafkaAddr, edgeRef string) error {
	td := b.top.TrustDomain
	dir := h.path("workloads", workloadDir(w.Name))
	certDir := filepath.Join(dir, "svid")
	id := WorkloadID(td, site.Name, w.Name)
	acct, err := b.account(w.User)
	if err != nil {
		return fmt.Errorf("render: workload %q user: %w", w.Name, err)
	}
	// Every workload's entry pins what its helper cannot lie about: the
	// account it runs as and the helper binary (SPIRE's unix attestor,
	// discover_workload_path).
	selectors := append([]string{acct.Selector(), "unix:path:" + b.env.Bins.Helper}, w.Selectors...)
	cmd := w.Command
	args := w.Args

	if w.Kind == topology.KindDeepStream {
		src, err := os.ReadFile(w.Config)
		if err != nil {
			return fmt.Errorf("render: workload %q: %w", w.Name, err)
		}
		pipeline, topics, err := renderPipelineConfig(src, kafkaAddr, filepath.Join(certDir, "cfg_kafka.txt"))
		if err != nil {
			return fmt.Errorf("render: workload %q config %s: %w", w.Name, w.Config, err)
		}
		configPath := filepath.Join(dir, filepath.Base(w.Config))
		// Root's file, readable by the workload's group only: the
		// pipeline cannot change the config its identity is bound to.
		h.addGroupFile(configPath, pipeline, acct)
		if len(w.Topics) > 0 {
			topics = w.Topics
		}
		if len(args) == 0 {
			args = []string{"-c", ConfigPlaceholder}
		}
		args = slices.Clone(args)
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, ConfigPlaceholder, configPath)
		}
		if cmd == "" {
			cmd = filepath.Join(filepath.Dir(b.env.Bins.Helper), w.App)
			if b.env.Embedded {
				// The embedded run uses edgeid's DeepStream stand-in, which
				// publishes a detection every 2 s through kcat and logs
				// what it sent, so the run can count what arrives.
				args = append(args, "-publish-interval", "2s", "-sent-log", filepath.Join(dir, "sent.log"))
			}
		}
		exeSum, err := b.appSHA256(w, cmd)
		if err != nil {
			return err
		}
		// The argv-derived selectors (config, topics) count only for an
		// app its helper held at exec (deepstream:launch:held); the
		// binary's hash is a kernel fact.
		selectors = append(selectors,
			"deepstream:app:"+w.App,
			"deepstream:exe_sha256:"+exeSum,
			"deepstream:config_sha256:"+sha256Hex(pipeline),
			"deepstream:launch:held",
		)
		for _, t := range topics {
			selectors = append(selectors, "deepstream:publish_topic:"+t)
			b.topics[t] = true
		}
	}
	sort.Strings(selectors)
	helperConf := b.renderHelper(h, agent, w, certDir, cmd, args, kafkaAddr, id)
	h.addGroupFile(filepath.Join(dir, "helper.conf"), helperConf, acct)
	h.addService(Service{
		Name: "helper-" + workloadDir(w.Name), Kind: KindHelper, Site: site.Name, Workload: w.Name,
		Account:   acct,
		Socket:    agent.Socket,
		DataDir:   dir,
		ReadyFile: filepath.Join(certDir, "svid.pem"),
		Argv:      []string{b.env.Bins.Helper, "-config", filepath.Join(dir, "helper.conf")},
	})
	b.plan.Entries = append(b.plan.Entries, Entry{
		Server: edgeRef, ParentID: agent.AgentID, SPIFFEID: id, Selectors: selectors,
		X509TTL: w.X509SVIDTTL, Site: site.Name, Workload: w.Name,
	})
	return nil
}

// appSHA256 is the SHA-256 of a DeepStream workload's app binary: from the
// topology's exe_sha256, else from the binary at cmd on this host.
func (b *builder) appSHA256(w topology.Workload, cmd string) (string, error) {
	if w.ExeSHA256 != "" {
		return w.ExeSHA256, nil
	}
	if !filepath.IsAbs(cmd) {
		return "", fmt.Errorf("render: workload %q: command %q is not an absolute path, so its binary cannot be hashed for deepstream:exe_sha256; give an absolute command or exe_sha256", w.Name, cmd)
	}
	sum, err := b.env.HashFile(cmd)
	if err != nil {
		return "", fmt.Errorf("render: workload %q: hash the app binary for deepstream:exe_sha256: %w (set exe_sha256 in the topology when the binary is not on this host)", w.Name, err)
	}
	return sum, nil
}
