// Package health serves edgeid-helper's health and metrics endpoints:
// /healthz (live: the process works and the last write did not fail),
// /readyz (ready: a valid SVID is on disk and every tunnel is listening),
// spiffe-helper's configurable liveness and readiness paths, and /metrics
// in the Prometheus text exposition format.
//
// The metrics registry is deliberately small (counters and gauges with
// labels, written by hand in the text format) to keep the helper's
// dependencies and memory low.
package health
