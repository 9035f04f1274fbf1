# Rendered by edgeid: bootstrap of the managed Vault (see bootstrap/README.md).
state_dir = "/var/lib/edgeid/vault/bootstrap"
summary_file = "/var/lib/edgeid/vault/bootstrap/summary.json"

vault {
    address = "https://cloud:8200"
    wait_timeout = "60s"
    ca_cert_file = "/var/lib/edgeid/vault/tls/vault.crt"
}

init {
    secret_shares = 1
    secret_threshold = 1
    shares_dir = "/var/lib/edgeid/vault/bootstrap/unseal"
    # The unseal share is encrypted to an age identity kept beside it
    # (0600). That suits a one-machine run; real deployments encrypt each
    # share to a different custodian (see conf/bootstrap.hcl).
    age_recipients = ["age1examplerecipient"]
}

unseal {
    age_identity_files = ["/var/lib/edgeid/vault/unseal-identity.txt"]
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
    secret_id_file = "/var/lib/edgeid/vault/bootstrap/approle/secret_id"
}

audit {
    enabled = true
    file_path = "/var/lib/edgeid/vault/audit.log"
}
