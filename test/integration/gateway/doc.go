// Package gateway holds the Kafka gateway's integration tests: real kcat
// (librdkafka) clients through a cloud-mode gateway in front of a 3-broker
// franz-go kfake cluster that serves mTLS on loopback. Identities are
// SVIDs from an in-memory CA (internal/svidtest); the SPIRE-backed
// rotation test is not here yet.
package gateway
