// Package multihost tests scripts/deploy-cloud.sh and deploy-edge.sh across
// real network hosts: network namespaces on a private subnet, with an HA
// cloud of two SPIRE servers on one PostgreSQL. It needs root.
package multihost
