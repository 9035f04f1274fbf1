package kafkagw

import (
	"sync"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/prometheus/client_golang/prometheus"
)

// overflowActor is the actor label once MaxActorLabels actors are labelled.
const overflowActor = "other"

// Metrics are the gateway's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	decisions   *prometheus.CounterVec
	denials     *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	connections *prometheus.CounterVec
	active      prometheus.Gauge
	bytes       *prometheus.CounterVec
	crypt       cryptMetrics

	mu        sync.Mutex
	actors    map[string]struct{}
	maxActors int
}

// NewMetrics registers the gateway metrics with reg. At most maxActors
// distinct actors get their own label on the denials counter; the rest
// count as "other" (DefaultMaxActorLabels when maxActors <= 0).
func NewMetrics(reg prometheus.Registerer, maxActors int) (*Metrics, error) {
	if maxActors <= 0 {
		maxActors = DefaultMaxActorLabels
	}
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeid_kafkagw_decisions_total", Help: "Authorization decisions by result and operation.",
		}, []string{"result", "operation", "resource_type"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeid_kafkagw_denials_total", Help: "Denied decisions by actor (bounded; overflow is \"other\").",
		}, []string{"actor"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgeid_kafkagw_request_duration_seconds", Help: "Time from reading a request to writing its response.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"api"}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeid_kafkagw_connections_total", Help: "Client connections by outcome.",
		}, []string{"result"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeid_kafkagw_connections_active", Help: "Open client connections.",
		}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeid_kafkagw_bytes_total", Help: "Bytes read from clients (in) and written to them (out).",
		}, []string{"direction"}),
		actors:    map[string]struct{}{},
		maxActors: maxActors,
	}
	cm, cryptCollectors := newCryptMetrics()
	m.crypt = cm
	for _, c := range append([]prometheus.Collector{m.decisions, m.denials, m.latency, m.connections, m.active, m.bytes}, cryptCollectors...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) decision(d policy.Decision, res policy.Resource, op policy.Operation, actor string) {
	if m == nil {
		return
	}
	result := "allow"
	if !d.Allowed {
		result = "deny"
		m.denials.WithLabelValues(m.actorLabel(actor)).Inc()
	}
	m.decisions.WithLabelValues(result, op.String(), res.Type.String()).Inc()
}

func (m *Metrics) actorLabel(actor string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.actors[actor]; ok {
		return actor
	}
	if len(m.actors) >= m.maxActors {
		return overflowActor
	}
	m.actors[actor] = struct{}{}
	return actor
}

func (m *Metrics) observe(api string, seconds float64) {
	if m != nil {
		m.latency.WithLabelValues(api).Observe(seconds)
	}
}

func (m *Metrics) conn(result string, delta int) {
	if m == nil {
		return
	}
	if result != "" {
		m.connections.WithLabelValues(result).Inc()
	}
	if delta != 0 {
		m.active.Add(float64(delta))
	}
}

func (m *Metrics) addBytes(direction string, n int) {
	if m != nil {
		m.bytes.WithLabelValues(direction).Add(float64(n))
	}
}
