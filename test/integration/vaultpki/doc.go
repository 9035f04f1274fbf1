// Package vaultpki holds the integration tests of the "vault_pki"
// UpstreamAuthority plugin against a real Vault (v1.21.0) and a real SPIRE
// server (v1.13.3) started through test/harness.
//
// Each test builds its own PKI the way ARCHITECTURE.md describes it (a root
// in mount "pki", an intermediate in mount "pki_int") and the
// least-privilege policy of the plugin's reference page; none depends on the
// bootstrap job.
//
// Run them under the heavy-test lock:
//
//	flock /tmp/edgeid-heavy.lock go test ./test/integration/vaultpki/
package vaultpki
