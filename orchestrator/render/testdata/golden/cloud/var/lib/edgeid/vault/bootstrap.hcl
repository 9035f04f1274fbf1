# Rendered by edgeid: bootstrap of the managed Vault (see bootstrap/README.md).
state_dir = "/var/lib/edgeid/vault/bootstrap"
summary_file = "/var/lib/edgeid/vault/bootstrap/summary.json"

# The intermediate may only sign for this trust domain (a URI name
# constraint), and the policy and the AppRole role are this trust
# domain's own.
trust_domain = "example.org"

vault {
    address = "https://cloud:8200"
    wait_timeout = "60s"
    ca_cert_file = "/var/lib/edgeid/vault/tls/vault.crt"
}

init {
    secret_shares = 3
    secret_threshold = 2
    shares_dir = "/var/lib/edgeid/vault/bootstrap/unseal"
    # Share i is encrypted to custodian i (vault.unseal_custodians); their
    # identities are never on this host.
    age_recipients = ["age18lllhyn6p6zvxmda6quup73vwklfz5zsm5rr6f6zmxre8wdn44kqutyqf7", "age1006zpwujvdn6f4aejm3hf8k97chnzqzvlklr3070h0dygt273s4qdhjvwt", "age1gtyc2nwyua0ek8gv8qv6995np7v0up0a543edyu5x5gq52z7aeqqjxppa0"]
    age_recipient_mode = "per_share"
}

# The custodians' identities (one per line) come from this environment
# variable for the one run that needs 2 of their unseal shares: to unseal
# Vault after a restart, or for a root token when the configuration changes.
unseal {
    age_identity_env = "EDGEID_VAULT_UNSEAL_IDENTITIES"
}

pki_root {
    path = "pki"
    common_name = "edgeid root CA"
}

pki_intermediate {
    path = "pki_int"
    common_name = "edgeid intermediate CA"
}

spire_upstream {
    kv_mount = "secret"
    role_id_file = "/var/lib/edgeid/vault/bootstrap/approle/role_id"
    # One secret_id per cloud server, each response-wrapped: a server
    # unwraps its own once, then replaces it before it expires.
    secret_id_file = "/var/lib/edgeid/vault/bootstrap/approle/secret_id"
    peer_secret_id_files = []
}

audit {
    enabled = true
    file_path = "/var/lib/edgeid/vault/audit.log"
}
