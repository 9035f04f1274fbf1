// Package daemon wires edgeid-helper together: it watches the Workload API,
// publishes every X.509 SVID update as one atomic file set (PEM, combined
// PEM, PKCS#12, Kafka client configs), writes JWT SVIDs and bundles, drives
// the managed process, runs the built-in tunnels from the same SVID, and
// serves health and metrics.
//
// Run takes a Config holding a parsed helper configuration. With
// daemon_mode = false it fetches once, writes, and returns.
package daemon
