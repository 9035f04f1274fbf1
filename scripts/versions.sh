# versions.sh is sourced by the scripts: the pinned versions of the programs
# edgeid builds and the cache they are built into. The tools modules under
# scripts/tools pin the same versions; test/harness reads them from here too.
SPIRE_VERSION=v1.13.3
VAULT_VERSION=v1.21.0
SPIFFE_HELPER_VERSION=v0.11.0
# kube-apiserver and etcd, for the kubeedge Node check's integration tests.
KUBE_VERSION=v1.34.2
ETCD_VERSION=v3.6.4
# Prometheus and promtool, for the demo's monitoring and the alert-rule
# tests: release 3.16.0 is Go module github.com/prometheus/prometheus
# v0.316.0 (scripts/tools/prometheus/go.mod).
PROMETHEUS_VERSION=v3.16.0
EDGEID_CACHE="${EDGEID_CACHE:-$HOME/.cache/edgeid}"
EDGEID_BIN="$EDGEID_CACHE/bin"
