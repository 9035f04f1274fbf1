// Package topology reads and validates an edgeid topology file: the trust
// domain, the Vault that roots it, the cloud SPIRE servers, the edge sites
// with their KubeEdge nodes and workloads, the Kafka brokers and the
// tunnels. Every problem is reported with the file and line it comes from,
// and a topology with any error is never half used.
package topology
