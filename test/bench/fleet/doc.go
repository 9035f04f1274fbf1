// Package fleet is a load generator that speaks SPIRE's agent API as N
// simulated edge nodes, and the fleet-scale benchmark built on it.
//
// Each simulated node holds its own node certificate and key. It attests
// with AttestAgent (the payload, then the challenge/response proof of
// possession) exactly as a spire-agent's NodeAttestor does, over a fresh
// server-authenticated TLS connection each time, the way spire-agent dials
// for attestation. No agent process runs; the server cannot tell.
//
// Two node attestors are driven side by side:
//
//	kubeedge  edgeid's external plugin (plugin_cmd + plugin_checksum), the
//	          payload and proof of plugins/common/kubeedge
//	x509pop   SPIRE's built-in plugin, the payload and proof of SPIRE's own
//	          pkg/common/plugin/x509pop (imported, not re-implemented)
//
// Both use node certificates of the same shape (ECDSA P-256, issued by a
// cloudcore-shaped CA from internal/kubeedgeca), so the only difference is
// the attestor.
//
// Renewal. Both attestors are re-attestable (CanReattest), and SPIRE
// v1.13.3 refuses RenewAgent for such agents ("agent must reattest instead
// of renew", pkg/server/api/agent/v1/service.go). A real agent therefore
// renews its SVID by attesting again (pkg/agent/svid/rotator.go reattest),
// and so does this load generator.
//
// This is a Go module of its own so that SPIRE (for x509pop) and
// spire-api-sdk never enter the root go.mod; `make vet` vets it so that
// drift from the root module fails CI.
package fleet
