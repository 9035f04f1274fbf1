// Package orchestrator tests `edgeid up` end to end on the real programs:
// Vault, cloud and edge SPIRE servers, KubeEdge-attested agents, DeepStream
// stand-ins under edgeid-helper, and Kafka over mTLS.
package orchestrator
