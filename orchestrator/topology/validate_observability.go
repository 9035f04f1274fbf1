package topology

import "net"

func (v *validator) observability(ob *ObservabilityBlock) Observability {
	if ob == nil {
		ob = &ObservabilityBlock{}
	}
	o := Observability{Metrics: true, BindAddress: orDefault(ob.BindAddress, "127.0.0.1"), LogFormat: orDefault(ob.LogFormat, "text")}
	if ob.Metrics != nil {
		o.Metrics = *ob.Metrics
	}
	if net.ParseIP(o.BindAddress) == nil {
		v.errorf(rangeOr(ob.BindAddressRange, ob.DefRange), "observability.bind_address: %q is not an IP address", o.BindAddress)
	}
	switch o.LogFormat {
	case "text", "json":
	default:
		v.errorf(rangeOr(ob.LogFormatRange, ob.DefRange), "observability.log_format: %q is not one of text, json", o.LogFormat)
	}
	return o
}

// fixedPorts are the ports edgeid's services take on every real host
// whatever the topology says (render's defaults), which the status
// endpoint must not take.
var fixedPorts = map[int]string{
	8200:                            "a managed Vault",
	9090:                            "Prometheus",
	9094:                            "the cloud Kafka gateway",
	9095:                            "the cloud Kafka gateway's metrics",
	DefaultServerMetricsPort:        "a SPIRE server's metrics",
	DefaultServerHealthPort:         "a SPIRE server's health",
	DefaultAgentMetricsPort:         "a SPIRE agent's metrics",
	DefaultAgentHealthPort:          "a SPIRE agent's health",
	DefaultUpstreamAgentMetricsPort: "an upstream agent's metrics",
	DefaultUpstreamAgentHealthPort:  "an upstream agent's health",
	DefaultSupervisorMetricsPort:    "edgeid supervise's metrics",
}

// statusEndpoint validates fleet_status and status_port once the hosts
// are known: the port is claimed on every host, and with fleet_status a
// node whose address is loopback or unspecified is refused, since the
// cloud host could not reach its endpoint there.
func (v *validator) statusEndpoint(ob *ObservabilityBlock, top *Topology) {
	if ob == nil {
		ob = &ObservabilityBlock{}
	}
	o := &top.Observability
	o.FleetStatus = ob.FleetStatus != nil && *ob.FleetStatus
	o.StatusPort = DefaultStatusPort
	if ob.StatusPort != nil {
		o.StatusPort = *ob.StatusPort
	}
	r := rangeOr(ob.StatusPortRange, rangeOr(ob.DefRange, v.fileRange()))
	if what, ok := fixedPorts[o.StatusPort]; ok {
		v.errorf(r, "observability.status_port: port %d is %s's on every host", o.StatusPort, what)
	}
	if o.StatusPort >= DefaultHelperHealthPort && o.StatusPort < DefaultHelperHealthPort+64 {
		v.errorf(r, "observability.status_port: ports %d onwards are the helpers' health listeners", DefaultHelperHealthPort)
	}
	what := "the status endpoint of edgeid supervise (observability.status_port)"
	claimed := map[string]bool{}
	claim := func(host string) {
		if !claimed[host] {
			claimed[host] = true
			v.claimPort(host, o.StatusPort, what, r)
		}
	}
	for _, h := range top.Cloud.Hosts {
		claim(h)
	}
	for _, s := range top.Sites {
		for _, n := range s.Nodes {
			claim(n.Name)
			if ip := net.ParseIP(n.Address); o.FleetStatus && ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
				v.errorf(rangeOr(ob.FleetStatusRange, r), "observability.fleet_status: node %q has address %s, where the cloud host cannot reach its status endpoint; give the node an address other hosts reach", n.Name, n.Address)
			}
		}
	}
}
