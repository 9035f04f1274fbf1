// Package kubeedge is the agent side of the kubeedge NodeAttestor. It sends
// the edge node's KubeEdge client certificate chain (written by edgecore,
// /etc/kubeedge/certs/server.crt by default) and answers the server's
// challenge by signing it with the node key (server.key). Both files are read
// at every attestation, so a certificate rotated by edgecore is picked up
// without restarting the agent.
//
// See plugins/doc/plugin_agent_nodeattestor_kubeedge.md.
package kubeedge
