// Package recordcrypt holds the integration tests of record encryption
// (helper/kafkagw/recordcrypt) against a real Vault (v1.21.0): Transit for
// the data keys, TLS certificate auth bound to SPIFFE IDs for the logins,
// with the policies vaultkms renders.
//
// Run them under the heavy-test lock:
//
//	flock /tmp/edgeid-heavy.lock go test ./test/integration/recordcrypt/
package recordcrypt
