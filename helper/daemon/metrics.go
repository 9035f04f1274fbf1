package daemon

import (
	"math"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/edgeid/edgeid/helper/process"
	"github.com/edgeid/edgeid/helper/tunnel"
)

// metrics are the helper's Prometheus metrics (helper/README.md, "Health
// and metrics"), served by package health.
type metrics struct {
	reg           *prometheus.Registry
	rotations     prometheus.Counter
	writeErrors   *prometheus.CounterVec
	rotation      *prometheus.HistogramVec
	processStarts prometheus.Counter
	processExits  *prometheus.CounterVec
	signals       prometheus.Counter
	tunnelConns   *prometheus.CounterVec
	tunnelActive  *prometheus.GaugeVec
	tunnelBytes   *prometheus.CounterVec
	tunnelSetup   *prometheus.HistogramVec
}

// rotationBuckets span a tmpfs swap (tens of µs) to a slow disk's fsyncs.
var rotationBuckets = prometheus.ExponentialBuckets(0.0001, 2, 16)

func newMetrics(src *source, now func() time.Time) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		reg:         prometheus.NewRegistry(),
		rotations:   counter("edgeid_helper_rotations_total", "X.509 SVID updates published to disk."),
		writeErrors: counterVec("edgeid_helper_write_errors_total", "Updates that could not be published.", "kind"),
		rotation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "edgeid_helper_rotation_duration_seconds",
			Help:    "Time from receiving an X.509 update (the agent's push) to the files swapped (stage=swap) and to the program notified (stage=signal).",
			Buckets: rotationBuckets,
		}, []string{"stage"}),
		processStarts: counter("edgeid_helper_process_starts_total", "Starts of the managed program."),
		processExits:  counterVec("edgeid_helper_process_exits_total", "Exits of the managed program.", "expected"),
		signals:       counter("edgeid_helper_process_signals_total", "Renew signals sent."),
		tunnelConns:   counterVec("edgeid_helper_tunnel_connections_total", "Tunnel connections by result.", "tunnel", "result"),
		tunnelActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgeid_helper_tunnel_active_connections", Help: "Open tunnel connections.",
		}, []string{"tunnel"}),
		tunnelBytes: counterVec("edgeid_helper_tunnel_bytes_total", "Bytes carried by tunnels; in is toward the target.", "tunnel", "direction"),
		tunnelSetup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "edgeid_helper_tunnel_setup_duration_seconds",
			Help:    "Time from accepting a tunnel connection to both sides connected (local-user check, TLS handshake, dial).",
			Buckets: rotationBuckets,
		}, []string{"tunnel"}),
	}
	leaf := func(f func(notBefore, notAfter time.Time) float64) func() float64 {
		return func() float64 {
			st := src.get()
			if st == nil {
				return math.NaN()
			}
			c := st.svid.Certificates[0]
			return f(c.NotBefore, c.NotAfter)
		}
	}
	m.reg.MustRegister(m.rotations, m.writeErrors, m.rotation, m.processStarts, m.processExits, m.signals,
		m.tunnelConns, m.tunnelActive, m.tunnelBytes, m.tunnelSetup,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgeid_helper_svid_expiry_seconds", Help: "Seconds until the current X.509 SVID expires.",
		}, leaf(func(_, notAfter time.Time) float64 { return notAfter.Sub(now()).Seconds() })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgeid_helper_svid_lifetime_seconds", Help: "Whole lifetime of the current X.509 SVID (not after - not before): with the expiry, how much of it is left.",
		}, leaf(func(notBefore, notAfter time.Time) float64 { return notAfter.Sub(notBefore).Seconds() })),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) processHooks() process.Hooks {
	return process.Hooks{
		Started: func(int) { m.processStarts.Inc() },
		Exited: func(_ int, _ error, expected bool) {
			if expected {
				m.processExits.WithLabelValues("true").Inc()
			} else {
				m.processExits.WithLabelValues("false").Inc()
			}
		},
		Signalled: func(int, syscall.Signal) { m.signals.Inc() },
	}
}

func (m *metrics) tunnelMetrics() tunnel.Metrics {
	return tunnel.Metrics{
		Accepted: func(t string) { m.tunnelConns.WithLabelValues(t, "accepted").Inc() },
		Rejected: func(t, reason string) { m.tunnelConns.WithLabelValues(t, "rejected_"+reason).Inc() },
		Active:   func(t string, d int) { m.tunnelActive.WithLabelValues(t).Add(float64(d)) },
		Bytes:    func(t, dir string, n int64) { m.tunnelBytes.WithLabelValues(t, dir).Add(float64(n)) },
		Setup:    func(t string, d time.Duration) { m.tunnelSetup.WithLabelValues(t).Observe(d.Seconds()) },
	}
}
