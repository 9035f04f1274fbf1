// Package gateway holds the Kafka gateway's integration tests: real kcat
// (librdkafka) clients through a cloud-mode gateway in front of a 3-broker
// franz-go kfake cluster on loopback, mTLS (the gateway dialing with its
// own SVID) or, for the `edgeid kafka-gateway` program beside its brokers,
// plaintext. Identities are SVIDs from an in-memory CA (internal/svidtest),
// handed to the program through an in-process Workload API; the edge-mode
// rotation test runs real SPIRE.
package gateway
