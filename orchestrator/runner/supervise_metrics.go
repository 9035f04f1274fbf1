package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/edgeid/edgeid/helper/health"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// superviseMetrics is what `edgeid supervise` exports: whether each
// service it watches runs, how often it found one stopped, and how its
// attempts to converge ended.
type superviseMetrics struct {
	reg        *prometheus.Registry
	converges  *prometheus.CounterVec
	foundDown  *prometheus.CounterVec
	lastChange prometheus.Gauge
}

func (r *Runner) newSuperviseMetrics() *superviseMetrics {
	m := &superviseMetrics{
		reg: prometheus.NewRegistry(),
		converges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeid_orchestrator_converges_total",
			Help: "Attempts to bring stopped services back (edgeid up), by result (ok, error).",
		}, []string{"result"}),
		foundDown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeid_orchestrator_services_found_stopped_total",
			Help: "Times a check found a service not running, by service (host/name).",
		}, []string{"service"}),
		lastChange: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeid_orchestrator_last_converge_timestamp_seconds",
			Help: "When the supervisor last brought services back (Unix time; 0 never).",
		}),
	}
	m.reg.MustRegister(m.converges, m.foundDown, m.lastChange, &serviceUpCollector{r: r},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// converged records one attempt to converge.
func (m *superviseMetrics) converged(stopped []string, err error) {
	for _, s := range stopped {
		m.foundDown.WithLabelValues(s).Inc()
	}
	if err != nil {
		m.converges.WithLabelValues("error").Inc()
		return
	}
	m.converges.WithLabelValues("ok").Inc()
	m.lastChange.SetToCurrentTime()
}

// serviceUpCollector reports, at each scrape, which services run.
type serviceUpCollector struct{ r *Runner }

var serviceUpDesc = prometheus.NewDesc("edgeid_orchestrator_service_up",
	"1 when the service (its PID file's process, running the same program) runs, else 0.", []string{"host", "service"}, nil)

func (c *serviceUpCollector) Describe(ch chan<- *prometheus.Desc) { ch <- serviceUpDesc }

func (c *serviceUpCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.r.plan.Hosts {
		if !c.r.isLocal(h.Name) {
			continue
		}
		for i := range h.Services {
			up := 0.0
			if c.r.proc(h, &h.Services[i]).pid() != 0 {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(serviceUpDesc, prometheus.GaugeValue, up, h.Name, h.Services[i].Name)
		}
	}
}

// supervisorMetricsAddr is where this supervisor serves /metrics: the
// first local host's listener in the plan ("" when metrics are off).
func (r *Runner) supervisorMetricsAddr() string {
	for _, h := range r.plan.Hosts {
		if r.isLocal(h.Name) && h.SupervisorMetrics != "" {
			return h.SupervisorMetrics
		}
	}
	return ""
}

// serveSupervisorMetrics listens on addr and serves m (and /healthz,
// /readyz) until ctx ends. The listener is bound before it returns, so a
// port in use is an error now.
func (r *Runner) serveSupervisorMetrics(ctx context.Context, addr string, m *superviseMetrics) error {
	srv, err := health.NewServer(health.Config{Addr: addr}, health.AlwaysOK{}, m.reg)
	if err != nil {
		return fmt.Errorf("runner: supervisor metrics on %s: %w", addr, err)
	}
	go func() {
		if err := srv.Serve(ctx); err != nil {
			// The supervisor keeps supervising without its metrics.
			r.logf("%s supervise: metrics listener stopped: %v", time.Now().Format(time.RFC3339), err)
		}
	}()
	return nil
}
