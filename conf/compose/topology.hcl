# edgeid topology of the docker-compose deployment (docker-compose.yml at the
# repository root). It is conf/topology.hcl, host for host: one cloud host
# (Vault, the cloud SPIRE server, the cloud agent) and two edge sites of one
# node each. Every host is a group of containers sharing one network and PID
# namespace, reached on the compose network by its host name.
#
# The one difference: Kafka is a real Apache Kafka broker run by compose on
# the cloud host ("external" to edgeid), not edgeid's demo broker. Its SVID
# carries the DNS name "cloud", so clients keep host-name verification on.
#
# The compose test (test/integration/compose) checks that this file describes
# the same sites, nodes and workloads as conf/topology.hcl.

trust_domain = "example.org"

vault {
  mode          = "managed"
  pki_mount     = "pki"
  pki_int_mount = "pki_int"
  kv_mount      = "secret"
}

cloud {
  servers       = 1
  datastore     = "sqlite"
  ca_ttl        = "24h"
  x509_svid_ttl = "1h"
  port          = 8081
}

kubeedge {
  cluster = "edge-cluster-1"
}

site "site-a" {
  ca_ttl        = "2h"
  x509_svid_ttl = "5m"
  server_node   = "edge-a-1"

  node "edge-a-1" {
    labels = { "kubernetes.io/arch" = "arm64" }
  }

  workload "deepstream/cam-pipeline" {
    kind   = "deepstream"
    node   = "edge-a-1"
    config = "../../conf/deepstream/test5_config.txt"
  }
}

site "site-b" {
  ca_ttl        = "2h"
  x509_svid_ttl = "5m"

  node "edge-b-1" {}

  workload "deepstream/cam-pipeline" {
    kind   = "deepstream"
    config = "../../conf/deepstream/test5_config_site-b.txt"
  }
}

kafka {
  # The compose service "kafka" on the cloud host: SSL listener, client
  # certificates required, its keystore and truststore kept fresh by an
  # edgeid-helper sidecar (service "kafka-tls").
  mode                    = "external"
  brokers                 = ["cloud:9093"]
  endpoint_identification = "https"
}
