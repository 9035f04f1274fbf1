package topology

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func (v *validator) site(sb *SiteBlock, top *Topology, allNodes map[string]hcl.Range) Site {
	s := Site{
		Name:        sb.Name,
		CATTL:       v.duration(sb.CATTL, DefaultSiteCATTL, sb.CATTLRange, "site.ca_ttl"),
		X509SVIDTTL: v.duration(sb.X509SVIDTTL, DefaultSiteSVIDTTL, sb.X509SVIDTTLRange, "site.x509_svid_ttl"),
		ServerNode:  sb.ServerNode,
		Port:        sb.Port,
	}
	if !validName(sb.Name) {
		v.errorf(sb.NameRange, "site name %q must be lowercase letters, digits and '-' (it is a path segment of SPIFFE IDs)", sb.Name)
	}
	if s.Port == 0 {
		s.Port = DefaultServerPort
	}
	v.nested(top.Cloud.CATTL, s.CATTL, "cloud.ca_ttl", fmt.Sprintf("site %q ca_ttl", s.Name), rangeOr(sb.CATTLRange, sb.DefRange))
	v.nested(s.CATTL, s.X509SVIDTTL, fmt.Sprintf("site %q ca_ttl", s.Name), "its x509_svid_ttl", rangeOr(sb.X509SVIDTTLRange, sb.DefRange))

	siteNodes := map[string]bool{}
	for _, nb := range sb.Nodes {
		if prev, ok := allNodes[nb.Name]; ok {
			v.errorf(nb.NameRange, "duplicate node %q (first defined at %s); KubeEdge node names are unique in a cluster", nb.Name, rangeString(prev))
			continue
		}
		if !validNodeName(nb.Name) {
			v.errorf(nb.NameRange, "node name %q is not a valid Kubernetes node name", nb.Name)
		}
		allNodes[nb.Name] = nb.NameRange
		siteNodes[nb.Name] = true
		s.Nodes = append(s.Nodes, Node{Name: nb.Name, Address: nb.Address, Labels: nb.Labels})
	}
	if len(sb.Nodes) == 0 {
		v.errorf(sb.DefRange, "site %q has no node blocks", s.Name)
	}
	if s.ServerNode == "" && len(s.Nodes) > 0 {
		s.ServerNode = s.Nodes[0].Name
	} else if s.ServerNode != "" && !siteNodes[s.ServerNode] {
		v.errorf(sb.ServerNodeRange, "site %q: server_node %q is not one of its nodes", s.Name, s.ServerNode)
	}
	if s.ServerNode != "" {
		v.claimPort(s.ServerNode, s.Port, fmt.Sprintf("the edge server of site %q", s.Name), rangeOr(sb.PortRange, sb.DefRange))
	}

	seen := map[string]hcl.Range{}
	for _, wb := range sb.Workloads {
		if prev, ok := seen[wb.Name]; ok {
			v.errorf(wb.NameRange, "duplicate workload %q in site %q (first defined at %s)", wb.Name, s.Name, rangeString(prev))
			continue
		}
		seen[wb.Name] = wb.NameRange
		s.Workloads = append(s.Workloads, v.workload(wb, s, siteNodes, top.Dir))
	}
	return s
}

func (v *validator) workload(wb *WorkloadBlock, s Site, siteNodes map[string]bool, dir string) Workload {
	w := Workload{
		Name:        wb.Name,
		Kind:        orDefault(wb.Kind, KindApp),
		Node:        orDefault(wb.Node, s.ServerNode),
		Config:      resolve(dir, wb.Config),
		App:         wb.App,
		Topics:      wb.Topics,
		Command:     wb.Command,
		Args:        wb.Args,
		Selectors:   wb.Selectors,
		X509SVIDTTL: v.duration(wb.X509SVIDTTL, s.X509SVIDTTL, wb.X509SVIDTTLRange, "workload.x509_svid_ttl"),
	}
	if !validPath(wb.Name) {
		v.errorf(wb.NameRange, "workload name %q must be lowercase letters, digits, '-' and '/' (it becomes the SPIFFE ID path)", wb.Name)
	}
	if wb.Node != "" && !siteNodes[wb.Node] {
		v.errorf(wb.NodeRange, "workload %q: node %q is not a node of site %q", w.Name, wb.Node, s.Name)
	}
	switch w.Kind {
	case KindDeepStream:
		if w.App == "" {
			w.App = "deepstream-test5-app"
		}
		if w.Config == "" {
			v.errorf(wb.DefRange, "workload %q: kind \"deepstream\" needs config (the pipeline's DeepStream app config)", w.Name)
		} else if _, err := os.Stat(w.Config); err != nil {
			v.errorf(wb.ConfigRange, "workload %q: config: %v", w.Name, err)
		}
	case KindEdgeHub, KindEventBus, KindApp:
		if len(w.Selectors) == 0 && w.Command == "" {
			v.errorf(wb.DefRange, "workload %q: kind %q needs selectors or a command to attest", w.Name, w.Kind)
		}
	default:
		v.errorf(wb.KindRange, "workload %q: kind %q is not one of deepstream, edgehub, eventbus, app", w.Name, w.Kind)
	}
	for _, sel := range w.Selectors {
		if typ, value, ok := strings.Cut(sel, ":"); !ok || typ == "" || value == "" {
			v.errorf(wb.SelectorsRange, "workload %q: selector %q is not type:value", w.Name, sel)
		}
	}
	v.nested(s.CATTL, w.X509SVIDTTL, fmt.Sprintf("site %q ca_ttl", s.Name), fmt.Sprintf("workload %q x509_svid_ttl", w.Name), rangeOr(wb.X509SVIDTTLRange, wb.DefRange))
	if wb.User != "" {
		w.User = v.user(wb.User, 0, wb.UserRange, fmt.Sprintf("workload %q user", w.Name))
	} else {
		w.User = User{UID: v.workloadUIDBase + v.workloadCount}
	}
	v.workloadCount++
	v.workloadRanges[s.Name+"/"+w.Name] = rangeOr(wb.UserRange, wb.DefRange)
	if wb.ExeSHA256 != "" {
		if w.Kind != KindDeepStream {
			v.errorf(wb.ExeSHA256Range, "workload %q: exe_sha256 applies to deepstream workloads only", w.Name)
		} else if !validSHA256(wb.ExeSHA256) {
			v.errorf(wb.ExeSHA256Range, "workload %q: exe_sha256 %q is not 64 lowercase hex digits", w.Name, wb.ExeSHA256)
		}
		w.ExeSHA256 = wb.ExeSHA256
	}
	return w
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (v *validator) tunnel(tb *TunnelBlock, top *Topology) Tunnel {
	t := Tunnel{Name: tb.Name, Site: tb.Site, Workload: tb.Workload, Mode: tb.Mode, Listen: tb.Listen, Target: tb.Target, AllowedSPIFFEIDs: tb.AllowedSPIFFEIDs}
	switch t.Mode {
	case "client", "server":
	default:
		v.errorf(tb.ModeRange, "tunnel %q: mode %q is not one of client, server", t.Name, t.Mode)
	}
	var site *Site
	for i := range top.Sites {
		if top.Sites[i].Name == t.Site {
			site = &top.Sites[i]
		}
	}
	if site == nil {
		v.errorf(tb.SiteRange, "tunnel %q: site %q is not defined", t.Name, t.Site)
	} else {
		found := false
		for _, w := range site.Workloads {
			if w.Name == t.Workload {
				found = true
				if _, port, err := net.SplitHostPort(t.Listen); err == nil {
					p, _ := strconv.Atoi(port)
					v.claimPort(w.Node, p, fmt.Sprintf("tunnel %q", t.Name), tb.ListenRange)
				}
			}
		}
		if !found {
			v.errorf(tb.SiteRange, "tunnel %q: workload %q is not defined in site %q", t.Name, t.Workload, t.Site)
		}
	}
	if _, _, err := net.SplitHostPort(t.Listen); err != nil {
		v.errorf(tb.ListenRange, "tunnel %q: listen %q is not host:port", t.Name, t.Listen)
	}
	if _, _, err := net.SplitHostPort(t.Target); err != nil {
		v.errorf(tb.DefRange, "tunnel %q: target %q is not host:port", t.Name, t.Target)
	}
	if len(t.AllowedSPIFFEIDs) == 0 {
		v.errorf(tb.DefRange, "tunnel %q: allowed_spiffe_ids is empty; a tunnel must name the peers it accepts", t.Name)
	}
	for _, id := range t.AllowedSPIFFEIDs {
		if _, err := spiffeid.FromString(id); err != nil {
			if _, err2 := spiffeid.TrustDomainFromString(id); err2 != nil {
				v.errorf(tb.DefRange, "tunnel %q: allowed_spiffe_ids: %q: %v", t.Name, id, err)
			}
		}
	}
	return t
}
