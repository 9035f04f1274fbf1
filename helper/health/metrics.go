package health

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Registry holds metrics and writes them in the Prometheus text format.
type Registry struct {
	mu      sync.Mutex
	metrics []*metric
}

type metric struct {
	name, help, typ string
	labels          []string
	mu              sync.Mutex
	values          map[string]float64 // key: joined label values
	fn              func() float64     // gauge computed at scrape time
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

func (r *Registry) add(m *metric) *metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics = append(r.metrics, m)
	return m
}

// Counter is a monotonically increasing value per label set.
type Counter struct{ m *metric }

// Gauge is a value per label set that goes up and down.
type Gauge struct{ m *metric }

// NewCounter registers a counter with label names.
func (r *Registry) NewCounter(name, help string, labels ...string) *Counter {
	return &Counter{r.add(&metric{name: name, help: help, typ: "counter", labels: labels, values: map[string]float64{}})}
}

// NewGauge registers a gauge with label names.
func (r *Registry) NewGauge(name, help string, labels ...string) *Gauge {
	return &Gauge{r.add(&metric{name: name, help: help, typ: "gauge", labels: labels, values: map[string]float64{}})}
}

// NewGaugeFunc registers an unlabelled gauge computed at scrape time; fn
// returning NaN leaves the sample out.
func (r *Registry) NewGaugeFunc(name, help string, fn func() float64) {
	r.add(&metric{name: name, help: help, typ: "gauge", fn: fn})
}

// Add adds v to the counter for the label values.
func (c *Counter) Add(v float64, labelValues ...string) {
	c.m.update(labelValues, func(f float64) float64 { return f + v })
}

// Inc adds 1.
func (c *Counter) Inc(labelValues ...string) { c.Add(1, labelValues...) }

// Value returns the counter for the label values.
func (c *Counter) Value(labelValues ...string) float64 { return c.m.get(labelValues) }

// Set sets the gauge.
func (g *Gauge) Set(v float64, labelValues ...string) {
	g.m.update(labelValues, func(float64) float64 { return v })
}

// Add moves the gauge by v.
func (g *Gauge) Add(v float64, labelValues ...string) {
	g.m.update(labelValues, func(f float64) float64 { return f + v })
}

// Value returns the gauge for the label values.
func (g *Gauge) Value(labelValues ...string) float64 { return g.m.get(labelValues) }

func (m *metric) update(lv []string, fn func(float64) float64) {
	key := strings.Join(lv, "\xff")
	m.mu.Lock()
	m.values[key] = fn(m.values[key])
	m.mu.Unlock()
}

func (m *metric) get(lv []string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.values[strings.Join(lv, "\xff")]
}

// Write writes every metric in the text exposition format, version 0.0.4.
func (r *Registry) Write(w io.Writer) error {
	r.mu.Lock()
	metrics := append([]*metric(nil), r.metrics...)
	r.mu.Unlock()
	bw := bufio.NewWriter(w)
	for _, m := range metrics {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", m.name, escapeHelp(m.help), m.name, m.typ)
		if m.fn != nil {
			if v := m.fn(); !math.IsNaN(v) {
				fmt.Fprintf(bw, "%s %s\n", m.name, formatFloat(v))
			}
			continue
		}
		m.mu.Lock()
		keys := make([]string, 0, len(m.values))
		for k := range m.values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			bw.WriteString(m.name)
			if len(m.labels) > 0 {
				vals := strings.Split(k, "\xff")
				bw.WriteByte('{')
				for i, l := range m.labels {
					if i > 0 {
						bw.WriteByte(',')
					}
					v := ""
					if i < len(vals) {
						v = vals[i]
					}
					fmt.Fprintf(bw, "%s=\"%s\"", l, escapeLabel(v))
				}
				bw.WriteByte('}')
			}
			fmt.Fprintf(bw, " %s\n", formatFloat(m.values[k]))
		}
		m.mu.Unlock()
	}
	return bw.Flush()
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}
