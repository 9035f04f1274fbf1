package daemon

import (
	"math"
	"syscall"
	"time"

	"github.com/edgeid/edgeid/helper/health"
	"github.com/edgeid/edgeid/helper/process"
	"github.com/edgeid/edgeid/helper/tunnel"
)

// metrics are the helper's Prometheus metrics.
type metrics struct {
	reg             *health.Registry
	rotations       *health.Counter
	writeErrors     *health.Counter
	rotationSeconds *health.Gauge
	processStarts   *health.Counter
	processExits    *health.Counter
	signals         *health.Counter
	tunnelConns     *health.Counter
	tunnelActive    *health.Gauge
	tunnelBytes     *health.Counter
}

func newMetrics(src *source, now func() time.Time) *metrics {
	r := health.NewRegistry()
	m := &metrics{
		reg:             r,
		rotations:       r.NewCounter("edgeid_helper_rotations_total", "X.509 SVID updates published to disk."),
		writeErrors:     r.NewCounter("edgeid_helper_write_errors_total", "Updates that could not be published.", "kind"),
		rotationSeconds: r.NewGauge("edgeid_helper_rotation_duration_seconds", "Time from receiving the last X.509 update to files swapped and the process notified."),
		processStarts:   r.NewCounter("edgeid_helper_process_starts_total", "Starts of the managed program."),
		processExits:    r.NewCounter("edgeid_helper_process_exits_total", "Exits of the managed program.", "expected"),
		signals:         r.NewCounter("edgeid_helper_process_signals_total", "Renew signals sent."),
		tunnelConns:     r.NewCounter("edgeid_helper_tunnel_connections_total", "Tunnel connections by result.", "tunnel", "result"),
		tunnelActive:    r.NewGauge("edgeid_helper_tunnel_active_connections", "Open tunnel connections.", "tunnel"),
		tunnelBytes:     r.NewCounter("edgeid_helper_tunnel_bytes_total", "Bytes carried by tunnels; in is toward the target.", "tunnel", "direction"),
	}
	r.NewGaugeFunc("edgeid_helper_svid_expiry_seconds", "Seconds until the current X.509 SVID expires.", func() float64 {
		st := src.get()
		if st == nil {
			return math.NaN()
		}
		return st.svid.Certificates[0].NotAfter.Sub(now()).Seconds()
	})
	return m
}

func (m *metrics) processHooks() process.Hooks {
	return process.Hooks{
		Started: func(int) { m.processStarts.Inc() },
		Exited: func(_ int, _ error, expected bool) {
			if expected {
				m.processExits.Inc("true")
			} else {
				m.processExits.Inc("false")
			}
		},
		Signalled: func(int, syscall.Signal) { m.signals.Inc() },
	}
}

func (m *metrics) tunnelMetrics() tunnel.Metrics {
	return tunnel.Metrics{
		Accepted: func(t string) { m.tunnelConns.Inc(t, "accepted") },
		Rejected: func(t, reason string) { m.tunnelConns.Inc(t, "rejected_"+reason) },
		Active:   func(t string, d int) { m.tunnelActive.Add(float64(d), t) },
		Bytes:    func(t, dir string, n int64) { m.tunnelBytes.Add(float64(n), t, dir) },
	}
}
