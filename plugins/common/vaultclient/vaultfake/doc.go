// Package vaultfake is an in-process fake of the parts of Vault's HTTP API
// that edgeid uses, for unit tests: token, AppRole, TLS certificate and
// Kubernetes logins with TTLs and renewal, sys/capabilities-self, a PKI
// mount with several issuers (sign-intermediate, issuer listing and reads,
// TTL capping, root rotation), KV version 2 with check-and-set, and a seal
// switch. It signs with real keys generated at runtime.
//
// It is a test double, not a Vault: policies are exact paths or prefixes
// ending in "*", and only the fields edgeid reads are returned.
package vaultfake
