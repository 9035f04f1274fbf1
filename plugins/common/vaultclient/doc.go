// Package vaultclient is the narrow edgeid wrapper over the Vault API client
// (github.com/hashicorp/vault/api).
//
// It holds only what edgeid needs from Vault:
//
//   - building a client from explicit settings (address, namespace, CA file,
//     optional TLS client certificate); unlike the Vault API's defaults, it
//     never reads VAULT_* environment variables, so a caller decides which
//     source wins;
//   - four authentication methods behind the Auth interface: TokenAuth,
//     AppRoleAuth (role and secret IDs read from files at each login),
//     CertAuth (TLS client certificate) and KubernetesAuth (service account
//     token file);
//   - the token lifecycle: a renewable token is renewed with the Vault API's
//     LifetimeWatcher, and when renewal fails or the token nears its end of
//     life the client logs in again at once rather than at the next request;
//   - a handful of logical calls (Read, Write, List, CapabilitiesSelf), each
//     bounded by a per-attempt timeout and retried with backoff on transient
//     failures (network errors, 5xx such as a sealed Vault, 429). A 403 on a
//     method that can log in again triggers one re-login and one retry.
//
// No lock is held across I/O: concurrent re-logins collapse into one through
// a singleflight group, and the token itself lives in the Vault API client,
// which guards it internally.
//
// The client never logs a token, secret ID or key.
package vaultclient
