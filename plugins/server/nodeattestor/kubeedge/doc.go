// Package kubeedge is the server side of the kubeedge NodeAttestor: it
// attests SPIRE agents running on KubeEdge edge nodes by their edgecore
// client certificate.
//
// The agent sends its node certificate chain; the server verifies it against
// the configured KubeEdge CA bundle (validity, client-auth EKU, subject
// pattern, deny list), then challenges the agent to sign a fresh nonce with
// the node key. When a kubeconfig or in-cluster credentials are available the
// server also requires that the Kubernetes Node exists, carries the edge role
// label and is not being deleted. The agent ID is
// spiffe://<td>/spire/agent/kubeedge/<cluster>/<node-name>, stable across
// certificate rotations, and re-attestation is allowed.
//
// See plugins/doc/plugin_server_nodeattestor_kubeedge.md.
package kubeedge
