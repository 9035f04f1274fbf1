// Package helper holds edgeid-helper's integration tests. They run the real
// edgeid-helper binary against a real SPIRE server and agent with short
// SVID TTLs, next to spiffe-helper v0.11.0, kcat (librdkafka) through a
// franz-go kfake mTLS broker, and mosquitto behind the built-in tunnels.
package helper
