package runner

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeid/edgeid/orchestrator/render"
)

// Status is the state of a run: the tree Vault → cloud servers → edge
// sites → agents → workloads.
type Status struct {
	TrustDomain string         `json:"trust_domain"`
	Vault       *VaultStatus   `json:"vault,omitempty"`
	Cloud       []ServerStatus `json:"cloud"`
	Sites       []SiteStatus   `json:"sites"`
	Kafka       *KafkaStatus   `json:"kafka,omitempty"`
	// Prometheus is the run's own Prometheus, when it has one.
	Prometheus *VaultStatus `json:"prometheus,omitempty"`
	// KafkaGateways are the cloud Kafka gateways with their policy's
	// decision counts.
	KafkaGateways []*GatewayStatus `json:"kafka_gateways,omitempty"`
	// Processes lists every service of the run on this machine with the
	// account it runs as.
	Processes []ProcessStatus `json:"processes"`
	// Problems are what Check finds wrong, one line each.
	Problems []string `json:"problems"`
}

// ProcessStatus is one service process and its account.
type ProcessStatus struct {
	Name    string `json:"name"`
	PID     int    `json:"pid,omitempty"`
	Running bool   `json:"running"`
	// UID is the process's effective uid as the kernel reports it;
	// WantUID the account the plan gives the service.
	UID     *int `json:"uid,omitempty"`
	WantUID int  `json:"want_uid"`
	// Health is "ready" when the service's health endpoint says so, what
	// is wrong otherwise, and empty for a service with none.
	Health string `json:"health,omitempty"`
}

// VaultStatus is a managed Vault's state (and the run's Prometheus's).
type VaultStatus struct {
	Addr    string `json:"addr"`
	Running bool   `json:"running"`
	// Root and Intermediate are the PKI root and intermediate CAs that
	// the trust domain chains to, read from Vault.
	Root         *CertInfo `json:"root,omitempty"`
	Intermediate *CertInfo `json:"intermediate,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// ServerStatus is one SPIRE server.
type ServerStatus struct {
	Host      string     `json:"host"`
	Addr      string     `json:"addr"`
	Running   bool       `json:"running"`
	Healthy   bool       `json:"healthy"`
	CAIssued  *time.Time `json:"ca_issued,omitempty"`
	CAExpires *time.Time `json:"ca_expires,omitempty"`
	// AuthorityID is the active CA's subject key ID, as SPIRE names it;
	// CA the certificate itself, as the workloads' SVID chains carry it.
	AuthorityID string        `json:"authority_id,omitempty"`
	CA          *CertInfo     `json:"ca,omitempty"`
	Agents      []AgentStatus `json:"agents"`
	Error       string        `json:"error,omitempty"`
}

// AgentStatus is one agent known to a server.
type AgentStatus struct {
	ID          string     `json:"spiffe_id"`
	Serial      string     `json:"serial,omitempty"`
	SVIDExpires *time.Time `json:"svid_expires,omitempty"`
	Banned      bool       `json:"banned,omitempty"`
}

// SiteStatus is one edge site.
type SiteStatus struct {
	Name      string           `json:"name"`
	Server    ServerStatus     `json:"server"`
	Workloads []WorkloadStatus `json:"workloads"`
}

// WorkloadStatus is one workload's helper and SVID.
type WorkloadStatus struct {
	Name        string     `json:"name"`
	SPIFFEID    string     `json:"spiffe_id"`
	Running     bool       `json:"running"`
	SVIDIssued  *time.Time `json:"svid_issued,omitempty"`
	SVIDExpires *time.Time `json:"svid_expires,omitempty"`
	// Serial is the SVID's serial number (decimal); LastRotation when the
	// helper last wrote it.
	Serial       string     `json:"serial,omitempty"`
	LastRotation *time.Time `json:"last_rotation,omitempty"`
}

// KafkaStatus is the demo broker's state.
type KafkaStatus struct {
	Addr     string         `json:"addr"`
	Running  bool           `json:"running"`
	Messages map[string]int `json:"messages_by_producer"`
}

// Status reads the state of every process of the run.
func (r *Runner) Status(ctx context.Context) *Status {
	st := &Status{TrustDomain: r.top.TrustDomain}
	for _, ref := range r.services(render.KindVault, "") {
		st.Vault = &VaultStatus{Addr: ref.s.URL, Running: r.proc(ref.h, ref.s).pid() != 0}
		if st.Vault.Running {
			r.vaultCAs(ctx, ref.h, ref.s, st.Vault)
		}
	}
	for _, ref := range r.services(render.KindSpireServer, "") {
		s := r.serverStatus(ctx, ref)
		if ref.s.Site == "" {
			st.Cloud = append(st.Cloud, s)
			continue
		}
		st.Sites = append(st.Sites, SiteStatus{Name: ref.s.Site, Server: s})
	}
	// Workloads, under their site; on a real host the site's server may
	// run elsewhere.
	chains := map[string][]*x509.Certificate{}
	for _, w := range r.services(render.KindHelper, "") {
		i := slices.IndexFunc(st.Sites, func(s SiteStatus) bool { return s.Name == w.s.Site })
		if i < 0 {
			st.Sites = append(st.Sites, SiteStatus{Name: w.s.Site})
			i = len(st.Sites) - 1
		}
		ws := WorkloadStatus{
			Name:     w.s.Workload,
			SPIFFEID: render.WorkloadID(r.top.TrustDomain, w.s.Site, w.s.Workload),
			Running:  r.proc(w.h, w.s).pid() != 0,
		}
		if certs, written, err := readSVIDChain(w.s.ReadyFile); err == nil {
			from, t := certs[0].NotBefore, certs[0].NotAfter
			ws.SVIDIssued, ws.SVIDExpires = &from, &t
			ws.Serial, ws.LastRotation = certs[0].SerialNumber.String(), &written
			chains[ws.SPIFFEID] = certs
		}
		st.Sites[i].Workloads = append(st.Sites[i].Workloads, ws)
	}
	attachCAs(st, chains)
	for _, ref := range r.services(render.KindPrometheus, "") {
		st.Prometheus = &VaultStatus{Addr: ref.s.URL, Running: r.proc(ref.h, ref.s).pid() != 0}
	}
	for _, ref := range r.services(render.KindKafka, "") {
		msgs, _ := ConsumedFrom(ref.s.DataDir + "/messages.log")
		st.Kafka = &KafkaStatus{Addr: ref.s.Addr, Running: r.proc(ref.h, ref.s).pid() != 0, Messages: msgs}
	}
	st.KafkaGateways = r.gatewayStatuses(ctx)
	for _, h := range r.plan.Hosts {
		if !r.isLocal(h.Name) {
			continue
		}
		for i := range h.Services {
			p := r.proc(h, &h.Services[i])
			ps := ProcessStatus{Name: p.label(), WantUID: h.Services[i].Account.UID, PID: p.pid()}
			if !r.privsep {
				ps.WantUID = os.Getuid()
			}
			if ps.PID != 0 {
				ps.Running = true
				if uid, err := processUID(ps.PID); err == nil {
					ps.UID = &uid
				}
				ps.Health = r.health(ctx, h, &h.Services[i])
			}
			st.Processes = append(st.Processes, ps)
		}
	}
	return st
}

// processUID reads a process's effective uid from /proc/<pid>/status.
func processUID(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no Uid line", pid)
}

func (r *Runner) serverStatus(ctx context.Context, ref svcRef) ServerStatus {
	s := ServerStatus{Host: ref.h.Name, Addr: ref.s.Addr, Running: r.proc(ref.h, ref.s).pid() != 0}
	if !s.Running {
		return s
	}
	cli := r.server(ref)
	if err := cli.healthy(ctx); err != nil {
		s.Error = err.Error()
		return s
	}
	s.Healthy = true
	if out, err := cli.run(ctx, "localauthority", "x509", "show", "-output", "json"); err == nil {
		var resp struct {
			Active struct {
				AuthorityID string          `json:"authority_id"`
				ExpiresAt   json.RawMessage `json:"expires_at"`
			} `json:"active"`
		}
		if json.Unmarshal([]byte(out), &resp) == nil {
			if t, ok := unixTime(resp.Active.ExpiresAt); ok {
				// SPIRE does not say when the CA was made; its ca_ttl
				// does, unless the upstream capped it.
				from := t.Add(-r.caTTL(ref.s.Site))
				s.CAIssued, s.CAExpires = &from, &t
			}
			s.AuthorityID = resp.Active.AuthorityID
		}
	}
	if out, err := cli.run(ctx, "agent", "list", "-output", "json"); err == nil {
		var resp struct {
			Agents []struct {
				ID struct {
					TrustDomain string `json:"trust_domain"`
					Path        string `json:"path"`
				} `json:"id"`
				Serial    string          `json:"x509svid_serial_number"`
				ExpiresAt json.RawMessage `json:"x509svid_expires_at"`
				Banned    bool            `json:"banned"`
			} `json:"agents"`
		}
		if json.Unmarshal([]byte(out), &resp) == nil {
			for _, a := range resp.Agents {
				as := AgentStatus{ID: "spiffe://" + a.ID.TrustDomain + a.ID.Path, Serial: a.Serial, Banned: a.Banned}
				if t, ok := unixTime(a.ExpiresAt); ok {
					as.SVIDExpires = &t
				}
				s.Agents = append(s.Agents, as)
			}
		}
	}
	return s
}

// caTTL is the configured CA lifetime of the cloud's servers (site "")
// or of a site's.
func (r *Runner) caTTL(site string) time.Duration {
	if site == "" {
		return r.top.Cloud.CATTL
	}
	if s, err := r.top.Site(site); err == nil {
		return s.CATTL
	}
	return 0
}

// unixTime reads a protojson int64 (a number or a quoted number).
func unixTime(raw json.RawMessage) (time.Time, bool) {
	sv := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(sv, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}

// WriteTree prints st as a tree a person can read: Vault, then the cloud
// servers with their agents and the edge sites nested under the cloud, each
// site with its agents and workloads, then the Kafka broker. On a real host
// only that host's part is known, and what is missing is left out.
func (st *Status) WriteTree(w io.Writer) {
	var sites []*treeNode
	for _, s := range st.Sites {
		sites = append(sites, s.treeNode())
	}
	var top []*treeNode
	if len(st.Cloud) > 0 {
		cloud := &treeNode{label: fmt.Sprintf("cloud: %d server(s) here", len(st.Cloud))}
		for _, c := range st.Cloud {
			cloud.children = append(cloud.children, &treeNode{
				label:    fmt.Sprintf("server %s %s — %s, CA expires %s", c.Host, c.Addr, c.health(), expiry(c.CAExpires)),
				children: agentNodes(c.Agents),
			})
		}
		cloud.children = append(cloud.children, sites...)
		top = append(top, cloud)
	} else {
		top = append(top, sites...)
	}
	if st.Kafka != nil {
		k := &treeNode{label: fmt.Sprintf("Kafka demo broker %s (%s): %d producer(s)", st.Kafka.Addr, running(st.Kafka.Running), len(st.Kafka.Messages))}
		for _, id := range slices.Sorted(maps.Keys(st.Kafka.Messages)) {
			k.children = append(k.children, &treeNode{label: fmt.Sprintf("%d message(s) from %s", st.Kafka.Messages[id], id)})
		}
		top = append(top, k)
	}
	for _, g := range st.KafkaGateways {
		top = append(top, g.treeNode())
	}
	fmt.Fprintf(w, "trust domain %s\n", st.TrustDomain)
	if st.Vault != nil {
		fmt.Fprintf(w, "Vault %s (%s)\n", st.Vault.Addr, running(st.Vault.Running))
	}
	if st.Prometheus != nil {
		fmt.Fprintf(w, "Prometheus %s (%s): targets %s/targets, alerts %s/alerts\n", st.Prometheus.Addr, running(st.Prometheus.Running), st.Prometheus.Addr, st.Prometheus.Addr)
	}
	for i, n := range top {
		n.write(w, "", i == len(top)-1)
	}
	if len(st.Processes) > 0 {
		fmt.Fprintf(w, "processes (uid: the kernel's, want: the plan's account)\n")
		for i, p := range st.Processes {
			(&treeNode{label: p.line()}).write(w, "", i == len(st.Processes)-1)
		}
	}
}

// treeNode is a site with its edge server, agents and workloads.
func (s SiteStatus) treeNode() *treeNode {
	n := &treeNode{label: fmt.Sprintf("site %s: edge server on another host", s.Name)}
	if s.Server.Host != "" {
		n.label = fmt.Sprintf("site %s: edge server %s %s — %s, CA expires %s", s.Name, s.Server.Host, s.Server.Addr, s.Server.health(), expiry(s.Server.CAExpires))
	}
	n.children = agentNodes(s.Server.Agents)
	for _, wl := range s.Workloads {
		n.children = append(n.children, &treeNode{label: fmt.Sprintf("workload %s (%s), helper %s, SVID expires %s", wl.Name, wl.SPIFFEID, running(wl.Running), expiry(wl.SVIDExpires))})
	}
	return n
}

// line is a process with its pid and the uid it runs as, flagged when
// that is not its plan's account.
func (p ProcessStatus) line() string {
	if !p.Running {
		return fmt.Sprintf("%s stopped (runs as uid %d)", p.Name, p.WantUID)
	}
	uid := "unknown"
	if p.UID != nil {
		uid = strconv.Itoa(*p.UID)
	}
	label := fmt.Sprintf("%s pid %d uid %s", p.Name, p.PID, uid)
	if p.UID == nil || *p.UID != p.WantUID {
		label += fmt.Sprintf(" — WRONG ACCOUNT, want uid %d", p.WantUID)
	}
	return label
}

func (s ServerStatus) health() string {
	switch {
	case s.Healthy:
		return "healthy"
	case s.Running:
		return "running, unhealthy: " + s.Error
	default:
		return "stopped"
	}
}

func agentNodes(list []AgentStatus) []*treeNode {
	var out []*treeNode
	for _, a := range list {
		out = append(out, &treeNode{label: fmt.Sprintf("agent %s, SVID expires %s", a.ID, expiry(a.SVIDExpires))})
	}
	return out
}

func expiry(t *time.Time) string {
	if t == nil {
		return "unknown"
	}
	return fmt.Sprintf("%s (in %s)", t.Format(time.RFC3339), time.Until(*t).Round(time.Second))
}

func running(b bool) string {
	if b {
		return "running"
	}
	return "stopped"
}

// treeNode is one line of the status tree.
type treeNode struct {
	label    string
	children []*treeNode
}

func (n *treeNode) write(w io.Writer, indent string, last bool) {
	branch, next := "├─ ", "│  "
	if last {
		branch, next = "└─ ", "   "
	}
	fmt.Fprintf(w, "%s%s%s\n", indent, branch, n.label)
	for i, c := range n.children {
		c.write(w, indent+next, i == len(n.children)-1)
	}
}

func (r *Runner) server(ref svcRef) serverCLI {
	return serverCLI{bin: r.env.Bins.SpireServer, socket: ref.s.Socket}
}
