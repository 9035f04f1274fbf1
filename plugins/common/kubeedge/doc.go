// Package kubeedge holds what the kubeedge node attestor's agent and server
// plugins share: the wire format of the attestation payload, the challenge
// and the challenge response, their size limits, and the signed message that
// proves possession of the node key.
//
// The exchange is:
//
//  1. the agent sends an [AttestationData] with the node certificate chain
//     (leaf first, DER);
//  2. the server verifies the chain and answers with a [Challenge] holding a
//     fresh random nonce;
//  3. the agent answers with a [ChallengeResponse]: its own random nonce, its
//     clock, and a signature made with the node key over [SignedMessage];
//  4. the server verifies the signature with the leaf's public key.
//
// Every message is JSON and is decoded strictly (unknown fields, trailing
// data and oversized input are errors), so both sides reject malformed input
// the same way.
package kubeedge
