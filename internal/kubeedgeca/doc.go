// Package kubeedgeca plays KubeEdge's cloudcore certificate authority and
// edgecore's certificate request, so tests and the edgeid orchestrator can
// issue node certificates that are byte-for-byte shaped like a real KubeEdge
// cluster's.
//
// What it reproduces (from kubeedge/kubeedge pkg/security/certs and
// edge/pkg/edgehub/certificate):
//
//   - The CA is a self-signed ECDSA P-256 certificate with CN=KubeEdge,
//     serial 1024, valid for 100 years of 364 days, KeyUsage
//     DigitalSignature|KeyEncipherment|CertSign, EKU ServerAuth+ClientAuth.
//   - Edgecore generates an ECDSA P-256 key and a CSR with subject
//     O=system:nodes, CN=system:node:<node-name> and no SANs.
//   - Cloudcore copies the CSR's CN, O and SANs into a certificate with a
//     random serial below 2^63, NotBefore now, NotAfter now+365 days by
//     default, KeyUsage DigitalSignature|KeyEncipherment and EKU ClientAuth
//     (or the usages the node asked for).
//   - On disk: server.crt (PEM certificate), server.key (SEC1
//     "EC PRIVATE KEY", mode 0600) and rootCA.crt.
//
// One deliberate difference: SignCSR checks the CSR's signature, which
// cloudcore does not do.
package kubeedgeca
