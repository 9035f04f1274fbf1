// Package recordgw holds the end-to-end tests of record encryption in the
// edge-mode Kafka gateway (helper/kafkagw, encrypt block of
// kafka_gateway): kcat produces and consumes through two edge gateways
// built from helper config files, one with the producer's SVID and one
// with the consumer's, in front of a 3-broker mTLS kfake cluster, with a
// real Vault (v1.21.0) doing Transit and cert auth bound to SPIFFE IDs.
//
// Run them under the heavy-test lock:
//
//	flock /tmp/edgeid-heavy.lock go test ./test/integration/recordgw/
package recordgw
