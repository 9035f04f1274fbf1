// Package smoke holds the end-to-end smoke test of the real SPIRE chain:
// server, agent attesting with a join token, and a workload fetching an
// X509-SVID that verifies against the server's bundle.
package smoke
