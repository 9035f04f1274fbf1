// Package conf holds the sample configurations, and embeds the files
// edgeid ships inside its binaries: the Prometheus alert rules and the
// Grafana dashboard.
package conf

import _ "embed"

// AlertRules is prometheus/alerts.yml: edgeid's Prometheus alert rules.
//
//go:embed prometheus/alerts.yml
var AlertRules []byte

// GrafanaDashboard is grafana/edgeid-dashboard.json, built on the same
// metric names as the alert rules.
//
//go:embed grafana/edgeid-dashboard.json
var GrafanaDashboard []byte
