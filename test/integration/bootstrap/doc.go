// Package bootstrap tests the Vault bootstrap (edgeid-bootstrap, the same
// command as `edgeid bootstrap vault`) against a real non-dev Vault with
// file storage: from scratch, idempotence, crash safety, key shares at
// rest, restart, and bad input.
package bootstrap
