// Package aclsync pushes a gateway policy to a Kafka cluster as
// "User:spiffe://…" ACLs, for clusters that run a SPIFFE principal builder.
//
// It computes a [Plan] (ACLs to create, to delete and unchanged) from the
// ACLs the policy implies and the ACLs the cluster holds, and [Apply]s it
// through the Admin API (franz-go kadm). The sync is idempotent: applying
// the same policy twice changes nothing the second time.
//
//	policy.ACLs() ──┐
//	                ├─ Compute ─► Plan ─► Write (diff) ─► Apply (kadm)
//	DescribeACLs ───┘
//
// Only ACLs whose principal is "User:spiffe://<trust domain>/…" of the
// policy's trust domain are managed: those are deleted when the policy no
// longer implies them. Every other ACL on the cluster (other principals,
// "User:*", other trust domains) is left alone, even when the policy
// created it. Actors that Kafka principals cannot express (path-prefix and
// trust-domain patterns) are reported in Plan.Skipped, never dropped
// silently.
package aclsync
