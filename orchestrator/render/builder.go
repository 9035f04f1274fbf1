package render

import (
	"os"
	"path/filepath"

	"github.com/edgeid/edgeid/orchestrator/topology"
)

type builder struct {
	top   *topology.Topology
	env   Env
	plan  *Plan
	hosts map[string]*Host
	// topics collects what the DeepStream pipelines publish to, as
	// buildWorkload reads it from their configs.
	topics map[string]bool
	// control runs Vault and SPIRE; kafka the demo broker; gatewayUser
	// the cloud Kafka gateway.
	control, kafka, gatewayUser Account
	// kafkaIPv4 is set when clients reach the demo broker as "localhost"
	// while it listens on 127.0.0.1 only: they then resolve v4 only.
	kafkaIPv4 bool
	// gateway is the cloud Kafka gateway in front of the demo broker (nil
	// without one); clients are the workloads its policy names.
	gateway *cloudGateway
	clients []kafkaClient
	// grants are the pipelines' record encryption grants (kafka.encryption),
	// for the bootstrap; vaultURL is the managed Vault's, for it.
	grants   []recordGrant
	vaultURL string
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
func (h *Host) publicSocket(name string) string { return h.path(PublicSocketDir, name) }

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
