package render

import (
	"fmt"
	"net"
	"strconv"
)

// StatusEndpoint is a host's status endpoint: `edgeid supervise` serves
// GET /status there (the host's runner.Status as JSON) over SPIFFE mTLS,
// with the SVID of ID from the host's agent (Socket), to the
// orchestrator's SVID only.
type StatusEndpoint struct {
	// Listen is where the supervisor binds (host:port); Addr where the
	// orchestrator dials it.
	Listen string
	Addr   string
	// ID is the supervisor's SPIFFE ID on this host.
	ID string
	// Socket is the Workload API of the host's agent that issues it.
	Socket string
}

// Orchestrator is the identity `edgeid status --fleet` reads the hosts'
// status endpoints with, issued by the cloud host's agent.
type Orchestrator struct {
	Host   string
	ID     string
	Socket string
}

// StatusID is the SPIFFE ID of the status endpoint of host.
func StatusID(td, host string) string {
	return fmt.Sprintf("spiffe://%s/host/%s/status", td, host)
}

// OrchestratorID is the SPIFFE ID of the orchestrator (`edgeid status
// --fleet` on the cloud host), the only client the status endpoints admit.
func OrchestratorID(td string) string { return CloudID(td, "orchestrator") }

// addStatusEndpoints gives every host with a Workload API agent (the
// cloud host's, an edge node's) its status endpoint and the registration
// entry of the supervisor's identity there, and the cloud host the
// orchestrator's identity. Both run as edgeid's own account (root, or
// the invoking user with --single-uid) from the edgeid binary, which the
// entries pin (unix:uid, unix:path). A host with no such agent (a second
// cloud server's, a separate Vault host) has no endpoint.
func (b *builder) addStatusEndpoints() {
	td := b.top.TrustDomain
	exe := b.env.OrchestratorExe
	if exe == "" {
		exe = b.env.Bins.Edgeid
	}
	selectors := []string{b.env.OrchestratorAccount.Selector(), "unix:path:" + exe}
	for _, h := range b.plan.Hosts {
		agent := workloadAgent(h)
		if agent == nil {
			continue
		}
		port := strconv.Itoa(b.env.Port(h.Name, "supervisor-status", b.top.Observability.StatusPort))
		ep := &StatusEndpoint{ID: StatusID(td, h.Name), Socket: agent.Socket,
			Listen: net.JoinHostPort("127.0.0.1", port), Addr: net.JoinHostPort("127.0.0.1", port)}
		if !b.env.Embedded && b.top.Observability.FleetStatus {
			ep.Listen = net.JoinHostPort(h.Addr, port)
			ep.Addr = ep.Listen
		}
		h.Status = ep
		ttl := b.top.Cloud.X509SVIDTTL
		if s, err := b.top.Site(agent.Site); err == nil {
			ttl = s.X509SVIDTTL
		}
		b.plan.Entries = append(b.plan.Entries, Entry{
			Server: agent.Server, ParentID: agent.AgentID, SPIFFEID: ep.ID,
			Selectors: selectors, X509TTL: ttl, Site: agent.Site, Workload: "edgeid-status",
		})
		if h.Name == b.top.Cloud.Hosts[0] {
			b.plan.Orchestrator = &Orchestrator{Host: h.Name, ID: OrchestratorID(td), Socket: agent.Socket}
			b.plan.Entries = append(b.plan.Entries, Entry{
				Server: agent.Server, ParentID: agent.AgentID, SPIFFEID: OrchestratorID(td),
				Selectors: selectors, X509TTL: ttl, Workload: "orchestrator",
			})
		}
	}
}

// workloadAgent is the agent of h that serves workloads (its Workload API
// in run/public): the cloud host's agent or an edge node's, not an edge
// server node's upstream agent.
func workloadAgent(h *Host) *Service {
	for i := range h.Services {
		if s := &h.Services[i]; s.Kind == KindSpireAgent && s.Name == "spire-agent" {
			return s
		}
	}
	return nil
}
