package render

import (
	"net"
	"strconv"

	"github.com/edgeid/edgeid/orchestrator/topology"
)

// obsData is what a rendered config needs of the observability block: its
// metrics and health listeners (nil when metrics are off) and log format.
type obsData struct {
	Bind        string
	MetricsPort int
	HealthPort  int
}

// bindAddress is where metrics and health listeners of host h bind:
// loopback in an embedded run, else the topology's bind_address.
func (b *builder) bindAddress() string {
	if b.env.Embedded {
		return "127.0.0.1"
	}
	return b.top.Observability.BindAddress
}

// scrapeHost is how a Prometheus on the same network reaches a listener
// of host h bound to bind: the host itself when it binds every address.
func scrapeHost(h *Host, bind string) string {
	if ip := net.ParseIP(bind); ip != nil && ip.IsUnspecified() {
		return h.Addr
	}
	return bind
}

// observe gives svc a metrics listener and a health listener, each on a
// port of its own (metricsDef and healthDef on real hosts; free ones in an
// embedded run), and returns them for its config; nil when metrics are
// off. A metricsDef of 0 means the health listener serves /metrics too
// (edgeid-helper, whose readiness is /readyz; SPIRE's is /ready).
func (b *builder) observe(h *Host, svc *Service, metricsDef, healthDef int) *obsData {
	if !b.top.Observability.Metrics {
		return nil
	}
	o := &obsData{Bind: b.bindAddress(), HealthPort: b.env.Port(h.Name, svc.Name+"-health", healthDef)}
	host := scrapeHost(h, o.Bind)
	health := "http://" + net.JoinHostPort(host, strconv.Itoa(o.HealthPort))
	if metricsDef == 0 {
		svc.MetricsURL, svc.HealthURL = health+"/metrics", health+"/readyz"
		return o
	}
	o.MetricsPort = b.env.Port(h.Name, svc.Name+"-metrics", metricsDef)
	svc.MetricsURL = "http://" + net.JoinHostPort(host, strconv.Itoa(o.MetricsPort)) + "/metrics"
	svc.HealthURL = health + "/ready"
	return o
}

// services are h's services of kind.
func (h *Host) services(kind ServiceKind) []Service {
	var out []Service
	for _, s := range h.Services {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// addSupervisorMetrics gives every host the metrics listener of its
// `edgeid supervise` (the orchestrator on that host), when metrics are on.
// An embedded run has one supervisor for every host: the cloud host's.
func (b *builder) addSupervisorMetrics() {
	if !b.top.Observability.Metrics {
		return
	}
	for _, h := range b.plan.Hosts {
		if b.env.Embedded && h.Name != b.top.Cloud.Hosts[0] {
			continue
		}
		bind := b.bindAddress()
		port := strconv.Itoa(b.env.Port(h.Name, "supervisor-metrics", topology.DefaultSupervisorMetricsPort))
		h.SupervisorMetrics = net.JoinHostPort(bind, port)
		h.SupervisorMetricsURL = "http://" + net.JoinHostPort(scrapeHost(h, bind), port) + "/metrics"
	}
}
