# edgeid Vault bootstrap: example configuration.
#
#   edgeid bootstrap vault --config conf/bootstrap.hcl
#   (or: edgeid-bootstrap vault --config conf/bootstrap.hcl)
#
# The bootstrap is safe to run again at any time: every step reads Vault's
# state first and only adds what is missing, and a run interrupted anywhere
# is finished by the next one. Progress goes to stderr, a JSON summary
# (fingerprints, mounts, file paths; never a secret) to stdout.
#
# Unknown keys are errors. Relative paths are resolved against the directory
# of this file. Durations are Go durations ("90s", "30m", "8760h").
# Every key below shows its default unless marked "example".

# Where the bootstrap writes on this machine: the encrypted key shares, the
# AppRole login files for the SPIRE server, CSRs and Vault's TLS files.
# Required. Created with mode 0700; secret files are 0600.
state_dir = "/var/lib/edgeid/bootstrap"

# The SPIFFE trust domain the intermediate signs SPIRE CAs for. It
# name-constrains the intermediate (permitted_uri_domains) and names the
# policy and the AppRole role (edgeid-spire-upstream-example-org,
# spire-server-example-org). Without it the intermediate has no URI
# constraint and the bootstrap warns.
trust_domain = "example.org"

# Also write the JSON summary here (optional; example).
summary_file = "/var/lib/edgeid/bootstrap/summary.json"

# At the end of each run, revoke root tokens made by init or generate-root
# that an interrupted earlier run left behind (the run's own root token is
# always revoked).
revoke_stray_root_tokens = true

vault {
  # Vault's API address. Required. The environment (VAULT_ADDR, VAULT_TOKEN,
  # VAULT_CACERT, ...) is ignored: this file is the only source.
  address = "https://127.0.0.1:8200"

  # CA bundle that verifies Vault's TLS certificate (system roots if unset;
  # example).
  ca_cert_file = "/etc/edgeid/vault-ca.pem"

  # Name checked in Vault's certificate, when it differs from the address's.
  tls_server_name = ""

  # Step 1 waits this long for Vault to answer, then fails.
  wait_timeout = "2m"

  # Bound on each request to Vault.
  request_timeout = "30s"

  # For a Vault run by someone else: the name of an environment variable
  # holding an existing token with enough rights. When that variable is set
  # and not empty, the bootstrap uses it instead of generating a root token
  # from the key shares, and does not revoke it. Empty: not used.
  admin_token_env = ""
}

# Optional: Vault unseals itself with another Vault's Transit engine (its
# own configuration has a seal "transit" stanza; `edgeid render` writes one
# from the topology's vault.seal_transit). Then init makes recovery shares
# (init.recovery_shares / recovery_threshold, Vault refuses secret_shares),
# kept like unseal shares below; they cannot unseal, they authorise the
# root token of later runs. Step 3 submits nothing: it waits for Vault to
# unseal itself and fails, naming transit_address, if it stays sealed.
# auto_unseal {
#   type            = "transit"                          # the only type
#   transit_address = "https://vault-unsealer.example.org:8200" # required; for messages
#   wait_timeout    = "2m"                               # default: vault.wait_timeout
# }

init {
  # Shamir key shares made at init, and how many unseal Vault. With
  # auto_unseal, set recovery_shares and recovery_threshold instead (same
  # defaults, 5 and 3).
  secret_shares    = 5
  secret_threshold = 3
  # recovery_shares    = 5
  # recovery_threshold = 3

  # One file per share, written together (all or none) into this
  # directory, which must be empty or absent at init. Default:
  # <state_dir>/unseal (<state_dir>/recovery with auto_unseal). It also
  # holds shares.json, which describes the shares (never their content).
  shares_dir = "/var/lib/edgeid/bootstrap/unseal"

  # How the shares are kept at rest; set exactly one of the three.
  #
  # 1. age (filippo.io/age) recipients. With age_recipient_mode =
  #    "per_share" (the default) share i is encrypted to recipient i only,
  #    one custodian per share, and there must be secret_shares recipients.
  #    With "all" every share is encrypted to every recipient.
  #    These are examples: put your custodians' public keys here.
  age_recipients = [
    "age1gj48z9pl9v4yhy9sllvsjrjml2em9t4az53k9theesyqe5sn9sessa92j0",
    "age1r2mnjsmj8aq8uz92ypnye9wqznedn7tvs78n9k5nwxu9hv29ey8qjspv3t",
    "age1rh7dghux9thnq6fmm4yf2a4nhd4uy7dcfq9mqee5whcsr7vsya4sk5ex54",
    "age1exapjeqt3c2h74andr8uvccdfq4h0v5suqd9kyg080lhe4hpqaass856eu",
    "age1swkl0gpanma4mgetrs8yvrtt0kjaw8zm5vw9yhu5ydaztxu2wsdsezfucn",
  ]
  age_recipient_mode = "per_share"

  # 2. Vault's native pgp_keys: OpenPGP public key files (armored or
  #    binary), one per share, share i to key i. Vault encrypts the shares
  #    itself; the files hold Vault's base64 output.
  # pgp_key_files = ["keys/alice.asc", "keys/bob.asc", ...]

  # 3. Plaintext shares, for throw-away development Vaults only.
  # insecure_plaintext_shares = true
}

# The identities that decrypt the shares (unseal or recovery), to unseal
# Vault after a restart and to generate a short-lived root token on later
# runs. They come from files or the environment, never from the command
# line. At least the threshold of shares must be decryptable. Keep them
# off the host that holds the shares: an identity file beside its shares
# gives whoever reads the host the unseal and the root (see "Custody" in
# bootstrap/README.md); the environment variable suits custodians who
# supply their identities for one run.
unseal {
  # age identity files (lines "AGE-SECRET-KEY-1..."; example).
  age_identity_files = ["/etc/edgeid/unseal/custodian-1.key"]

  # Name of an environment variable holding age identities, one per line
  # (example).
  age_identity_env = "EDGEID_UNSEAL_AGE_IDENTITIES"

  # For pgp_key_files: OpenPGP private key files, and the environment
  # variable holding their passphrase.
  # pgp_private_key_files = ["/etc/edgeid/unseal/alice.sec.asc"]
  # pgp_passphrase_env    = "EDGEID_UNSEAL_PGP_PASSPHRASE"
}

# The root CA: used only to sign the intermediate.
pki_root {
  path          = "pki"
  max_lease_ttl = "87600h" # 10 years

  # "internal": Vault generates the root key and self-signed certificate.
  # "external": Vault generates the key and writes a CSR to csr_file for an
  # offline root; the run stops there (exit status 1, a message naming the
  # file). Have the offline root sign it, put the signed certificate
  # (followed by its chain up to the offline root) in signed_cert_file, and
  # run again.
  mode             = "internal"
  csr_file         = "/var/lib/edgeid/bootstrap/pki/root.csr"
  signed_cert_file = ""

  common_name  = "edgeid root CA"
  organization = ""
  ttl          = "87600h"
  key_type     = "ec" # or "rsa"
  key_bits     = 256  # ec: 256, 384, 521; rsa: 2048 (default), 3072, 4096

  # Names of the issuer and key inside the mount; the bootstrap finds its
  # CA by these on later runs.
  issuer_name = "edgeid-root"
  key_name    = "edgeid-root-key"

  # AIA and CRL URLs put in the certificates this CA signs.
  # Default: <vault.address>/v1/<path>/ca and /crl.
  # issuing_certificates    = ["https://vault.example.org:8200/v1/pki/ca"]
  # crl_distribution_points = ["https://vault.example.org:8200/v1/pki/crl"]
}

# The intermediate CA, signed by the root: the SPIRE server's upstream.
pki_intermediate {
  path          = "pki_int"
  max_lease_ttl = "43800h" # 5 years
  common_name   = "edgeid intermediate CA"
  organization  = ""
  ttl           = "43800h" # shorter than the root's
  key_type      = "ec"
  key_bits      = 256
  issuer_name   = "edgeid-intermediate"
  key_name      = "edgeid-intermediate-key"
  # issuing_certificates    = [...]  default <vault.address>/v1/pki_int/ca
  # crl_distribution_points = [...]  default <vault.address>/v1/pki_int/crl

  # Constraints the root puts on the intermediate. The chain is root →
  # intermediate → cloud SPIRE CA → edge SPIRE CA → SVID, so 2 CAs may sit
  # below it; an edge CA cannot make a CA of its own.
  max_path_length = 2
  # Names no SPIRE CA may certify. Vault's own names (vault_tls) are always
  # excluded, and so is every IP address (SPIRE never issues IP SANs); the
  # URI domain is limited to trust_domain.
  excluded_dns_domains = []
  # An existing intermediate without these constraints is signed again (same
  # key) on the next run; the old issuer is kept, renamed
  # edgeid-intermediate-unconstrained-<id>.
}

# The SPIRE server's access: a least-privilege policy and an AppRole.
spire_upstream {
  # Default with trust_domain set: edgeid-spire-upstream-<trust domain, dots as dashes>.
  policy_name = "edgeid-spire-upstream-example-org"

  # KV v2 mount where the vault_pki plugin publishes JWT authorities, at
  # <kv_mount>/data/edgeid/<trust domain>/jwt-authorities. Enabled as KV v2
  # when missing.
  kv_mount = "secret"

  approle_mount = "approle"
  # Default with trust_domain set: spire-server-<trust domain, dots as dashes>.
  role_name     = "spire-server-example-org"

  # Tokens are short-lived and renewable; the plugin renews them and logs in
  # again when token_max_ttl is reached.
  token_ttl     = "30m"
  token_max_ttl = "2h"

  # secret_id lifetime ("0s": never expires). The vault_pki plugin with
  # rotate_secret_id = true replaces its own at 2/3 of it; a server stopped
  # for longer needs a new one (run with rotate_secret_id = true).
  secret_id_ttl = "720h"

  # Write each secret_id response-wrapped: the file holds a single-use token
  # that the plugin unwraps once (and replaces with the secret_id). Deliver
  # it before secret_id_wrap_ttl ends.
  wrap_secret_id     = true
  secret_id_wrap_ttl = "24h"

  # CIDRs the login and its tokens are bound to (none by default; example).
  bound_cidrs = []

  # Files for the SPIRE servers (mode 0600). A valid secret_id, or a wrapping
  # token not yet unwrapped, is kept; a missing or unknown one is replaced.
  # Each HA peer gets a file of its own in peer_secret_id_files: every
  # server unwraps and rotates only its own.
  role_id_file         = "/var/lib/edgeid/bootstrap/approle/role_id"
  secret_id_file       = "/var/lib/edgeid/bootstrap/approle/secret_id"
  peer_secret_id_files = []

  # Issue fresh secret_ids on every run (and destroy every other secret_id
  # of the role, the ones the servers made for themselves included).
  rotate_secret_id = false
}

# File audit device: every request and response, HMAC'd by Vault.
audit {
  enabled = true
  path    = "file"
  # On the Vault server's file system; Vault must be able to write it.
  file_path = "/var/log/vault/audit.log"
}

# Optional: Vault's own TLS. When this block is present, the bootstrap
# issues Vault's server certificate from a CA of its own in a separate PKI
# mount (never the SPIRE chain: a compromised SPIRE CA could otherwise mint
# Vault's name), through a PKI role limited to these names, and writes a
# TLS-enabled Vault listener config next to it. The certificate is
# re-issued when the names change, the CA changes, or less than a third of
# its lifetime is left.
vault_tls {
  common_name = "vault.example.org" # required in this block
  pki_mount      = "pki_vault_tls"
  ca_common_name = "edgeid Vault TLS CA"
  ca_ttl         = "87600h"
  dns_names   = ["vault"]
  ip_sans     = ["127.0.0.1"]
  ttl         = "2160h" # 90 days
  role_name   = "edgeid-vault-server"

  cert_file   = "/var/lib/edgeid/bootstrap/vault-tls/vault.crt" # leaf
  key_file    = "/var/lib/edgeid/bootstrap/vault-tls/vault.key" # 0600
  ca_file     = "/var/lib/edgeid/bootstrap/vault-tls/ca.crt"    # the Vault TLS CA only, for clients
  config_file = "/var/lib/edgeid/bootstrap/vault-tls/vault-tls.hcl"

  listener_address = "0.0.0.0:8200"
  api_addr         = "https://vault.example.org:8200"

  # HCL appended verbatim to the written config (storage, seal, ...).
  extra_config = <<-EOT
    storage "raft" {
      path    = "/var/lib/vault/raft"
      node_id = "vault-1"
    }
    cluster_addr = "https://vault.example.org:8201"
  EOT
}

# Optional: the Vault side of the Kafka gateways' record encryption
# (`edgeid render` writes it from the topology's kafka.encryption). Needs
# trust_domain. Transit key rings (aes256-gcm96, never deleted), cert auth
# trusting the pki_root issuer (the root of every SVID), and per SPIFFE ID
# a cert auth role bound by allowed_uri_sans with one policy of the same
# name: produce = data keys only, consume = decrypt only. Roles and
# policies edgeid wrote for identities no longer listed are deleted.
# record_encryption {
#   transit_mount   = "transit"
#   cert_auth_mount = "cert"
#   token_ttl       = "15m"
#   key_rings       = ["detections", "commands"]
#   identity "spiffe://example.org/edge/site-a/deepstream/cam-pipeline" {
#     produce = ["detections"]
#     consume = ["commands"]
#   }
#   identity "spiffe://example.org/cloud/analytics" {
#     consume = ["detections"]
#   }
# }
