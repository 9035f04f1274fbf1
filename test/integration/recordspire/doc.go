// Package recordspire holds the end-to-end test of issue 19's record
// encryption with every identity from a real SPIRE: a SPIRE server and
// agent (unix workload attestor) issue short-lived SVIDs to a producer
// account and a consumer account, each running its own edgeid-helper
// binary whose edge-mode kafka_gateway encrypts records with data keys
// from a real Vault (v1.21.0, non-dev, TLS, file storage: Transit and cert
// auth trusting the SPIRE bundle). kcat, run as the same account as its
// helper, produces and consumes through the helpers in front of a 3-broker
// mTLS kfake cluster whose brokers also hold a SPIRE SVID.
//
// Run it under the heavy-test lock (it needs root, to run the helpers and
// kcat under other uids with setpriv):
//
//	flock /tmp/edgeid-heavy.lock go test -count=1 -v ./test/integration/recordspire/
package recordspire
