// Package policy is the Kafka gateway's authorization policy: allow and
// deny rules over (actor, resource, operation), written in HCL, where the
// actor is a SPIFFE ID and resources and operations are Kafka's.
//
// A decision follows the two-step lookup of Uber's Kafka authorizer:
//
//  1. Does any rule, for any actor, cover the resource?
//     no  → allow_if_no_acl decides.
//  2. A matching deny rule → DENY (deny wins).
//     A matching allow rule → ALLOW.
//     Otherwise            → DENY.
//
// Operations imply others as in Kafka: READ, WRITE, DELETE and ALTER imply
// DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS, and ALL matches every
// operation. Implication applies to allow rules only; a deny of DESCRIBE
// does not deny READ.
//
// A Set is immutable. Reloading builds a new Set (with an empty decision
// cache) and swaps it in.
package policy
