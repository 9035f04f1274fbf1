# Rendered by edgeid: the managed Vault. Integrated storage (raft), so the
# same config grows into an HA cluster.
storage "raft" {
    path = "/var/lib/edgeid/vault/data"
    node_id = "cloud"
    # Vault's guidance for production: 1 gives the fastest leader
    # election and failure detection (the default 5 suits slow disks).
    performance_multiplier = 1
}
listener "tcp" {
    address = "0.0.0.0:8200"
    tls_cert_file = "/var/lib/edgeid/vault/tls/vault.crt"
    tls_key_file = "/var/lib/edgeid/vault/tls/vault.key"
    tls_min_version = "tls12"
    tls_cipher_suites = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    # Prometheus scrapes /v1/sys/metrics?format=prometheus without a token.
    telemetry {
        unauthenticated_metrics_access = true
    }
}
telemetry {
    prometheus_retention_time = "1h"
    disable_hostname = true
}
api_addr = "https://cloud:8200"
cluster_addr = "https://cloud:8201"
disable_mlock = true
ui = false
