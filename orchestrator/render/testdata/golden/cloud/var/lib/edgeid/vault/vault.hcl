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
    address = "cloud:8200"
    tls_disable = true
}
api_addr = "http://cloud:8200"
cluster_addr = "https://cloud:8201"
disable_mlock = true
ui = false
