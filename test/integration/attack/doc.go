// Package attack is edgeid's attacker-on-the-edge-node suite. Each test runs
// an attack as a local uid other than the victim workload's, against real
// SPIRE servers and agents, the real plugins and helper, and (where the
// attack needs one) a real Vault or kube-apiserver. Every attack must fail
// while the legitimate pipeline keeps its SVID; where a protection can be
// switched off, the same attack runs once more without it and must then
// succeed, so that no test passes by accident.
//
// The tests need root: they create uids' processes, cgroups and network
// namespaces. Files are grouped by the asset attacked: identity.go tests
// (workload SVIDs), control.go tests (admin sockets and keys), node.go tests
// (node attestation) and so on.
package attack
