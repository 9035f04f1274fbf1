package render

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/edgeid/edgeid/orchestrator/topology"
)

func (b *builder) build() error {
	top := b.top
	if top.Vault.Managed && !b.env.Embedded && !b.env.InsecureLocalUnseal && !top.Vault.HasUnsealCustody() {
		return noCustodyError(top)
	}
	if top.Vault.Managed {
		b.buildVault()
	}
	cloudRef, cloudAddr := b.buildCloudServers()
	cloudHost := b.host(top.Cloud.Hosts[0])
	cloudAgent := b.buildCloudAgent(cloudHost, cloudRef, cloudAddr)
	kafkaAddr, kafkaIndex := strings.Join(top.Kafka.Brokers, ","), -1
	if top.Kafka.Demo {
		kafkaAddr, kafkaIndex = b.buildKafkaDemo(cloudHost, cloudAgent, cloudRef)
	}
	for _, site := range top.Sites {
		if err := b.buildSite(site, cloudRef, cloudAddr, kafkaAddr); err != nil {
			return err
		}
	}
	if kafkaIndex >= 0 {
		// The broker consumes the topics the sites' pipelines publish.
		argv := cloudHost.Services[kafkaIndex].Argv
		argv[slices.Index(argv, "-topics")+1] = strings.Join(slices.Sorted(maps.Keys(b.topics)), ",")
	}
	if top.Vault.Managed {
		b.fillBootstrap()
	}
	b.addGatewayPolicy()
	b.addSupervisorMetrics()
	b.addStatusEndpoints()
	b.buildPrometheus()
	return nil
}

// buildVault adds the managed Vault and its bootstrap.
func (b *builder) buildVault() {
	h := b.host(b.top.Vault.Host)
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
	// The bootstrap runs in edgeid's own process, as root. Its
	// configuration is filled in once the sites are built
	// (fillBootstrap): it grants what their pipelines do.
	b.vaultURL = url
	h.addFile(h.path("vault", "bootstrap.hcl"), nil, 0o600)
	svc := Service{
		Name: "vault", Kind: KindVault, Addr: addr, URL: url, Account: b.control,
		Argv:    []string{b.env.Bins.Vault, "server", "-config", h.path("vault", "vault.hcl")},
		DataDir: h.path("vault", "data"),
	}
	if b.top.Observability.Metrics {
		svc.MetricsURL = url + "/v1/sys/metrics?format=prometheus"
		svc.HealthURL = url + "/v1/sys/health"
	}
	h.addService(svc)
}

// fillBootstrap renders the managed Vault's bootstrap configuration into
// the file buildVault added.
func (b *builder) fillBootstrap() {
	h := b.host(b.top.Vault.Host)
	path := h.path("vault", "bootstrap.hcl")
	for i := range h.Files {
		if h.Files[i].Path == path {
			h.Files[i].Content = b.renderBootstrap(h, b.vaultURL)
		}
	}
}

// buildCloudServers adds the cloud servers and returns the first one's
// reference and the address agents dial (cloud.address, or the first's).
func (b *builder) buildCloudServers() (cloudRef, cloudAddr string) {
	top := b.top
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
		h.addOwnedFile(h.path("spire", "server.conf"), b.renderCloudServer(h, &svc, i), 0o600, b.control)
		if top.Vault.Managed && !b.env.Embedded && hostName != top.Vault.Host {
			vh := b.host(top.Vault.Host)
			cert, _ := VaultTLSFiles(vh)
			svc.Needs = []string{cert, b.roleIDFile(vh), b.secretIDFile(vh, i, hostName)}
			svc.NeedsFrom = vh.Name
		}
		h.addService(svc)
		if i == 0 {
			cloudRef, cloudAddr = Ref(h.Name, svc.Name), svc.Addr
		}
	}
	if top.Cloud.Address != "" {
		cloudAddr = top.Cloud.Address
	}
	return cloudRef, cloudAddr
}

// buildCloudAgent adds the cloud host's own agent, for cloud workloads
// (the Kafka broker).
func (b *builder) buildCloudAgent(cloudHost *Host, cloudRef, cloudAddr string) Service {
	cloudAgent := Service{
		Name: "spire-agent", Kind: KindSpireAgent, Account: b.control, Caps: workloadAgentCaps(),
		Socket:     cloudHost.publicSocket("agent.sock"),
		DataDir:    cloudHost.path("spire", "agent-data"),
		BundlePath: cloudHost.path("spire", "bootstrap-cloud.pem"),
		AgentID:    CloudID(b.top.TrustDomain, "agent/"+cloudHost.Name),
		Server:     cloudRef,
		Argv:       []string{b.env.Bins.SpireAgent, "run", "-config", cloudHost.path("spire", "agent.conf")},
	}
	cloudHost.addOwnedFile(cloudHost.path("spire", "agent.conf"), b.renderJoinTokenAgent(cloudHost, &cloudAgent, cloudAddr), 0o600, b.control)
	cloudHost.addService(cloudAgent)
	return cloudAgent
}

// buildKafkaDemo adds the Kafka demo broker on the cloud host, with its
// own SVID, and the cloud Kafka gateway in front of it, and returns the
// gateway's address (what clients use) and the broker's index among the
// host's services: build fills in its topics once the sites are read.
func (b *builder) buildKafkaDemo(cloudHost *Host, cloudAgent Service, cloudRef string) (string, int) {
	top := b.top
	port := strconv.Itoa(b.env.Port(cloudHost.Name, "kafka", top.Kafka.Port))
	listen := net.JoinHostPort(cloudHost.Addr, port)
	// Clients verify the broker by the name it advertises, which its SVID
	// carries (SPIRE puts no IP SANs in SVIDs): "localhost" on one
	// machine, the cloud host's name between hosts.
	advertise := advertisedName(cloudHost.Addr)
	brokerID := CloudID(top.TrustDomain, "kafka")
	argv := []string{b.env.Bins.Edgeid, "kafka-demo",
		"-listen", listen,
		"-workload-api", "unix://" + cloudAgent.Socket,
		"-spiffe-id", brokerID,
		"-trust-domain", top.TrustDomain,
		"-topics", "", // filled in by build
		"-log", cloudHost.path("kafka", "messages.log"),
		// Only the gateway (and the broker's own consumer) may connect.
		"-allow", CloudID(top.TrustDomain, "kafka-gateway")}
	var dnsNames []string
	clientAddr := listen
	if advertise != "" {
		argv = append(argv, "-advertise", advertise)
		dnsNames = []string{advertise}
		clientAddr = net.JoinHostPort(advertise, port)
		b.kafkaIPv4 = advertise == "localhost" && net.ParseIP(cloudHost.Addr).To4() != nil
	}
	cloudHost.addService(Service{
		Name: "kafka", Kind: KindKafka, Addr: listen, Account: b.kafka,
		Argv: argv, Socket: cloudAgent.Socket, DataDir: cloudHost.path("kafka"),
	})
	b.plan.Entries = append(b.plan.Entries, Entry{
		Server: cloudRef, ParentID: cloudAgent.AgentID, SPIFFEID: brokerID,
		Selectors: []string{b.kafka.Selector(), "unix:path:" + b.env.Bins.Edgeid},
		X509TTL:   top.Cloud.X509SVIDTTL, DNSNames: dnsNames, Workload: "kafka",
	})
	index := len(cloudHost.Services) - 1
	return b.buildKafkaGateway(cloudHost, cloudAgent, cloudRef, clientAddr, brokerID, advertise), index
}

// advertisedName is the name a broker on a host reached at addr gives its
// clients: "localhost" for a loopback address, addr itself for a host
// name, and none ("") for another IP address, which no SVID can carry.
func advertisedName(addr string) string {
	ip := net.ParseIP(addr)
	switch {
	case ip == nil:
		return addr
	case ip.IsLoopback():
		return "localhost"
	default:
		return ""
	}
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
	sh.addOwnedFile(sh.path("spire", "upstream-agent.conf"), b.renderKubeEdgeAgent(sh, &upstream, cloudAddr, false), 0o600, b.control)
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
	sh.addOwnedFile(sh.path("spire", "server.conf"), b.renderEdgeServer(sh, &edge, upstream, cloudAddr, site), 0o600, b.control)
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
		h.addOwnedFile(h.path("spire", "agent.conf"), b.renderKubeEdgeAgent(h, &agent, edge.Addr, true), 0o600, b.control)
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
	cmd, args := w.Command, w.Args
	name := "helper-" + workloadDir(w.Name)
	// With the demo's cloud gateway, the workload's Kafka clients speak
	// plaintext to its helper's edge gateway on loopback.
	gw := b.edgeGateway(h, name, w.X509SVIDTTL)
	clientAddr := kafkaAddr
	if gw != nil {
		clientAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(gw.Port))
	}
	if w.Kind == topology.KindDeepStream {
		var dsSelectors []string
		cmd, args, dsSelectors, err = b.deepStreamLaunch(h, site, w, acct, dir, clientAddr)
		if err != nil {
			return err
		}
		selectors = append(selectors, dsSelectors...)
	}
	sort.Strings(selectors)
	svc := Service{
		Name: name, Kind: KindHelper, Site: site.Name, Workload: w.Name,
		Account:   acct,
		Socket:    agent.Socket,
		DataDir:   dir,
		ReadyFile: filepath.Join(certDir, "svid.pem"),
		Argv:      []string{b.env.Bins.Helper, "-config", filepath.Join(dir, "helper.conf")},
	}
	entry := Entry{
		Server: edgeRef, ParentID: agent.AgentID, SPIFFEID: id, Selectors: selectors,
		X509TTL: w.X509SVIDTTL, Site: site.Name, Workload: w.Name,
	}
	if gw != nil && w.Kind == topology.KindDeepStream {
		// Its gateway logs in to Vault with the SVID when it encrypts:
		// the SVID then needs a CN, which SPIRE takes from a DNS name.
		if gw.Encrypt, err = b.edgeEncrypt(h, &svc, b.clients[len(b.clients)-1], dir, acct); err != nil {
			return err
		}
		if gw.Encrypt != nil {
			entry.DNSNames = []string{workloadDNSName(td, site.Name, w.Name)}
		}
	}
	// A host's helpers take consecutive health ports (metrics included).
	obs := b.observe(h, &svc, 0, topology.DefaultHelperHealthPort+len(h.services(KindHelper)))
	helperConf := b.renderHelper(h, agent, w, helperArgs{certDir: certDir, cmd: cmd, args: args, kafka: kafkaAddr, id: id, obs: obs, gateway: gw})
	h.addGroupFile(filepath.Join(dir, "helper.conf"), helperConf, acct)
	h.addService(svc)
	b.plan.Entries = append(b.plan.Entries, entry)
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

// deepStreamLaunch renders a DeepStream workload's pipeline config (root's,
// readable by the workload's group) and returns the app's command line and
// the selectors that bind the identity to that app and config.
func (b *builder) deepStreamLaunch(h *Host, site topology.Site, w topology.Workload, acct Account, dir, kafkaAddr string) (cmd string, args, selectors []string, err error) {
	certDir := filepath.Join(dir, "svid")
	cmd, args = w.Command, w.Args
	src, err := os.ReadFile(w.Config)
	if err != nil {
		return "", nil, nil, fmt.Errorf("render: workload %q: %w", w.Name, err)
	}
	pipeline, topics, err := renderPipelineConfig(src, kafkaAddr, filepath.Join(certDir, "cfg_kafka.txt"))
	if err != nil {
		return "", nil, nil, fmt.Errorf("render: workload %q config %s: %w", w.Name, w.Config, err)
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
		return "", nil, nil, err
	}
	// The argv-derived selectors (config, topics) count only for an
	// app its helper held at exec (deepstream:launch:held); the
	// binary's hash is a kernel fact.
	selectors = []string{
		"deepstream:app:" + w.App,
		"deepstream:exe_sha256:" + exeSum,
		"deepstream:config_sha256:" + sha256Hex(pipeline),
		"deepstream:launch:held",
	}
	for _, t := range topics {
		selectors = append(selectors, "deepstream:publish_topic:"+t)
		b.topics[t] = true
	}
	b.addKafkaClient(site, w, pipeline, topics)
	return cmd, args, selectors, nil
}
