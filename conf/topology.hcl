# edgeid topology: one file describes the whole nested deployment.
# `edgeid up -f conf/topology.hcl` runs it on this machine (every host is a
# set of local processes on loopback, ports chosen automatically);
# `edgeid render -f conf/topology.hcl --host <host>` writes one host's
# configs for a real machine. Relative paths resolve against this file.

# One trust domain spans Vault, the cloud and every edge site.
trust_domain = "example.org"

vault {
  # "managed": edgeid starts Vault and runs the bootstrap job (init, unseal,
  # PKI root in pki_mount, intermediate in pki_int_mount, AppRole for the
  # cloud servers). "external": your Vault at `address`, already bootstrapped
  # with `edgeid bootstrap vault`; set role_id_file / secret_id_file.
  mode          = "managed"
  pki_mount     = "pki"
  pki_int_mount = "pki_int"
  # KV v2 mount that holds the JWT authorities the cloud servers share.
  kv_mount = "secret"

  # Custody of the managed Vault's unseal. The embedded `edgeid up` keeps one
  # local share beside Vault (dev only); on real hosts `edgeid render` and
  # `edgeid up --host` refuse to run without one of these (or both):
  #
  # Custodians: each key share age-encrypted to one person; their identities
  # never go on the Vault host. A restarted Vault waits for unseal_threshold
  # of them (EDGEID_VAULT_UNSEAL_IDENTITIES for that one run of up).
  # unseal_custodians = ["age1...alice", "age1...bob", "age1...carol"]
  # unseal_threshold  = 2
  #
  # Auto-unseal from another Vault's Transit engine; custodians then keep
  # the recovery shares. The token file, on the Vault host, holds a token
  # that may only encrypt and decrypt with key_name (no trailing newline).
  # seal_transit {
  #   address    = "https://vault-unsealer.example.org:8200"
  #   key_name   = "edgeid-unseal"
  #   token_file = "/etc/edgeid/vault-transit-token"
  #   ca_cert    = "/etc/edgeid/vault-unsealer-ca.pem"
  # }
}

cloud {
  # Number of cloud SPIRE servers. More than one needs datastore = "postgres"
  # (SPIRE's HA mode: every server on one SQL datastore).
  servers   = 1
  datastore = "sqlite"
  # The cloud CA is signed by Vault's intermediate. It must live at least 6×
  # as long as any edge site's CA (SPIRE activates the next CA when 1/6 of
  # the current one's life remains).
  ca_ttl        = "24h"
  x509_svid_ttl = "1h"
  port          = 8081
}

kubeedge {
  # Cluster name, part of every edge agent's ID:
  # spiffe://<td>/spire/agent/kubeedge/<cluster>/<node>.
  cluster = "edge-cluster-1"
  # cloudcore's CA (rootCA.crt). Leave it out and edgeid plays cloudcore's
  # CA, issuing KubeEdge-style node certificates (the embedded default).
  # ca_cert = "/etc/kubeedge/ca/rootCA.crt"
  # A kubeconfig on every SPIRE server host (absolute path) makes
  # `edgeid render` turn the Kubernetes Node check on: a deleted Node's
  # agent is cut off at its next SVID renewal. `edgeid up` ignores it.
  # kubeconfig = "/etc/edgeid/kubeedge-kubeconfig"
}

# An edge site: its own nested SPIRE server (on server_node) signs its
# workloads' SVIDs, and keeps doing so while the uplink is down, until its CA
# expires. A site always survives an outage of ca_ttl / 2 minus a few
# minutes (SPIRE renews its CA at half-life); see "Sizing TTLs" in README.md.
site "site-a" {
  ca_ttl        = "2h"
  x509_svid_ttl = "5m"
  server_node   = "edge-a-1"

  node "edge-a-1" {
    labels = { "kubernetes.io/arch" = "arm64" }
  }

  # A DeepStream pipeline, attested by its binary, its exact config and the
  # topics the config publishes to; edgeid-helper launches it and keeps its
  # Kafka client files fresh.
  workload "deepstream/cam-pipeline" {
    kind   = "deepstream"
    node   = "edge-a-1"
    config = "deepstream/test5_config.txt"
  }
}

site "site-b" {
  ca_ttl        = "2h"
  x509_svid_ttl = "5m"

  node "edge-b-1" {}

  # The same pipeline with its own topic (site-b.detections): the Kafka
  # policy rendered from this file lets each site write only its own
  # topics, which `make demo` shows with a wrong-site write.
  workload "deepstream/cam-pipeline" {
    kind   = "deepstream"
    config = "deepstream/test5_config_site-b.txt"
  }
}

kafka {
  # "demo": a TLS Kafka broker on the cloud host that requires client
  # certificates and presents its own SVID. "external": your brokers.
  mode = "demo"
  port = 9093
  # librdkafka's ssl.endpoint.identification.algorithm, "https" by default:
  # the demo broker advertises a name its SVID carries ("localhost" on one
  # machine, the cloud host's name between hosts). "none" skips the name
  # check (the chain is still verified against the bundle).
  endpoint_identification = "https"

  # Record encryption (off unless this block is present): each pipeline's
  # edge gateway seals the values of these topics before they leave the
  # edge and opens them on Fetch, with data keys from Vault Transit; the
  # brokers store only ciphertext. The gateway logs in to Vault with its
  # SVID (cert auth), so Vault decides who may produce (data keys) or
  # consume (decrypt) each key ring; `edgeid render` writes the gateways'
  # encrypt blocks, a DNS name on their entries (the SVID's CN) and the
  # bootstrap's record_encryption block. Needs real hosts: the embedded
  # run's Vault has no TLS. Left commented so the demo is unchanged.
  # encryption {
  #   # Topic names, or prefixes written "site-b.*".
  #   topics    = ["detections", "site-b.detections"]
  #   # Transit key ring per entry: a name defaults to itself, a prefix
  #   # needs one.
  #   key_rings = { "site-b.detections" = "site-b" }
  #   undecryptable = "quarantine" # or "pass"; never dropped
  #   plaintext     = "allow"      # or "quarantine"
  #   # Cloud consumers that may decrypt every ring.
  #   consumers = ["spiffe://example.org/cloud/analytics"]
  #   # Operators that may re-wrap data keys after a key ring rotation
  #   # (edgeid kafka rewrap), never decrypt them.
  #   rewrappers = ["spiffe://example.org/ops/key-admin"]
  # }
}

# Accounts (orchestrator/README.md, "Accounts"): edgeid runs as root and
# starts nothing as root. Vault and SPIRE run as the control account, the
# demo broker and each workload as accounts of their own. A value is a user
# name or a decimal uid (>= 1000; numbers need no passwd entry). A workload
# picks its own with `user = "..."` in its block.
users {
  control           = "61000"
  kafka_demo        = "61001"
  workload_uid_base = 61100
}
