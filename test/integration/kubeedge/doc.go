// Package kubeedge holds the integration tests of the kubeedge NodeAttestor
// against a real SPIRE v1.13.3 server and agent, which load the plugins
// through plugin_cmd and plugin_checksum. A cloudcore-shaped CA
// (kubeedgeca) issues the node certificates, and an httptest server on
// loopback plays kube-apiserver for the Kubernetes Node check.
package kubeedge
