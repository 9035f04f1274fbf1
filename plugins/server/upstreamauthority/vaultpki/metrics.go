package vaultpki

import (
	"context"
	"time"

	metricsv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/hostservice/common/metrics/v1"
)

// metricsPrefix starts every metric key the plugin emits.
const metricsPrefix = "vault_pki"

// metrics sends counters and timings through SPIRE's metrics host service
// when SPIRE offers it; otherwise the plugin's structured logs are the only
// record.
type metrics struct {
	client *metricsv1.MetricsServiceClient // nil without the host service
}

func (m metrics) incr(name, result string) {
	if m.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = m.client.IncrCounter(ctx, &metricsv1.IncrCounterRequest{
		Key:    []string{metricsPrefix, name},
		Val:    1,
		Labels: []*metricsv1.Label{{Name: "result", Value: result}},
	})
}

func (m metrics) since(name string, start time.Time) {
	if m.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = m.client.MeasureSince(ctx, &metricsv1.MeasureSinceRequest{
		Key:  []string{metricsPrefix, name},
		Time: start.UnixNano(),
	})
}

func (m metrics) gauge(name string, val float32) {
	if m.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = m.client.SetGauge(ctx, &metricsv1.SetGaugeRequest{Key: []string{metricsPrefix, name}, Val: val})
}

func resultLabel(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
