// Package health serves edgeid-helper's health and metrics endpoints:
// /healthz (live: the process works and the last write did not fail),
// /readyz (ready: a valid SVID is on disk and every tunnel is listening),
// spiffe-helper's configurable liveness and readiness paths, and /metrics
// from a Prometheus registry (client_golang).
package health
