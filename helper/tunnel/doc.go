// Package tunnel is edgeid-helper's built-in SPIFFE mTLS tunnel, a
// one-process replacement for ghostunnel next to a workload.
//
// A server-mode tunnel accepts mutual TLS on Listen, authorises the client
// by SPIFFE ID and forwards the plaintext stream to Target (for example a
// local mosquitto). A client-mode tunnel accepts plaintext on Listen (for a
// local application) and opens mutual TLS to Target, authorising the server
// by SPIFFE ID.
//
// Certificates come straight from the Workload API through an
// x509svid.Source: no key is written to disk, nothing is signalled, and
// every new connection uses the SVID current at its handshake. With
// MaxConnLifetime, long-lived connections are closed after that time so
// that clients reconnect with the new SVID.
//
// Peers are authorised by allowed_spiffe_ids entries: an exact SPIFFE ID,
// a path prefix "spiffe://td/prefix/*" (any ID below /prefix), or a trust
// domain "spiffe://td" (any ID in it). TLS is 1.2 or later with ECDHE and
// AES-GCM when 1.2 is negotiated.
package tunnel
