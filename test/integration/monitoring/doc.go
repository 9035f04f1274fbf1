// Package monitoring tests edgeid's monitoring against the real programs:
// the shipped alert rules with promtool, and an `edgeid up` run whose own
// Prometheus (the pinned one) scrapes every SPIRE server and agent, every
// helper and Vault, fires an alert when a helper dies and resolves it when
// it is back, while `edgeid status --check` reports a killed agent.
package monitoring
