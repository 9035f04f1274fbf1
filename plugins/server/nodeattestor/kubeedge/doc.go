// Package kubeedge is the server side of the kubeedge NodeAttestor: it
// attests SPIRE agents running on KubeEdge edge nodes by their edgecore
// client certificate.
//
// The agent sends its node certificate chain; the server verifies it against
// the configured KubeEdge CA bundle (validity, client-auth EKU, subject
// pattern, deny lists from the configuration and from deny_list_file, which
// is re-read when it changes), then challenges the agent to sign a fresh
// nonce with the node key. Whenever a kubeconfig or in-cluster credentials
// exist, the server also requires that the Kubernetes Node exists, carries
// the edge role label and is not being deleted; while the API server cannot
// be reached, a node's last successful check stands in for at most
// node_check_max_staleness. The agent ID is
// spiffe://<td>/spire/agent/kubeedge/<cluster>/<node-name>, stable across
// certificate rotations, and re-attestation is allowed, so every check runs
// again at each agent SVID renewal.
//
// See plugins/doc/plugin_server_nodeattestor_kubeedge.md.
package kubeedge
