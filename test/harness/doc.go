// Package harness starts the real programs edgeid integrates with — SPIRE
// server and agent, Vault (dev and non-dev), PostgreSQL, kube-apiserver
// with etcd — for integration
// tests, on loopback ports chosen at runtime and in per-test temporary
// directories.
//
// Every process it starts is stopped by the test's cleanup, and when a test
// fails the tail of each process's log is printed, so a failure in CI shows
// what SPIRE or Vault said. A pinned binary that is missing from the cache
// fails the test with a message that names the binary and the command that
// builds it; nothing is ever skipped silently.
//
// The pinned binaries live in ${EDGEID_CACHE:-$HOME/.cache/edgeid}/bin and
// are built by scripts/build-tools.sh (make tools).
package harness
