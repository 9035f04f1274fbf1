// Package vaultpki implements the "vault_pki" UpstreamAuthority plugin for
// SPIRE server: it roots SPIRE's X.509 CA in a HashiCorp Vault PKI secrets
// engine and shares JWT authorities through a Vault KV version 2 mount.
//
// Compared with SPIRE's built-in "vault" plugin it
//
//   - checks Vault at Configure: it logs in, checks the token may update
//     <pki_mount_point>/root/sign-intermediate, and reads the signing
//     issuer, so a wrong address or policy stops the server at start;
//   - signs with an optional issuer_ref, returns the chain ordered and
//     deduplicated, and returns every root of the mount's hierarchy;
//   - keeps the MintX509CAAndSubscribe stream open and sends the new root
//     set whenever Vault's roots change (multi-issuer root rotation);
//   - implements PublishJWTKeyAndSubscribe over KV v2 with check-and-set
//     merges, so servers rooted in the same Vault see each other's JWT keys;
//   - renews its token with the Vault API's LifetimeWatcher and logs in
//     again as soon as renewal fails or the token nears its end;
//   - warns when Vault grants a shorter CA lifetime than SPIRE asked for,
//     and fails below min_ttl.
//
// The environment (VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT, VAULT_TOKEN)
// only fills in keys the configuration leaves unset.
//
// The binary is built from plugins/cmd/edgeid-upstreamauthority-vaultpki;
// the reference page is plugins/doc/plugin_server_upstreamauthority_vault_pki.md.
package vaultpki
