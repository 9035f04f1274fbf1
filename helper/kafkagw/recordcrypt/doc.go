// Package recordcrypt encrypts Kafka record values (and optionally keys
// and named headers) for a broker that is not trusted, with envelope
// encryption: AES-256-GCM under a data key (DEK) that a KMS (Vault
// Transit, package vaultkms) makes and wraps.
//
//	producer side                                 consumer side
//	Producer ─ one DEK per key ring ─┐            Opener ─ LRU of unwrapped DEKs
//	  Sealer(topic) ── Seal(rec) ────┼─ broker ─▶   Open(topic, rec)
//	  value → nonce‖ct‖tag           │            header → KMS unwrap (cache miss)
//	  + header "edgeid-enc"          │            → AEAD open → plaintext
//
// A Producer reuses one DEK per key ring for at most MaxRecords records
// or MaxAge, then asks the KMS for a new one. While the KMS cannot be
// reached it keeps the DEK it holds for OutageRecords / OutageAge more,
// then fails closed with ErrOutageBound. With a current DEK, Seal
// allocates nothing.
//
// Every encrypted record carries the header HeaderKey (see Header for its
// layout). Each field's AAD binds the topic, the field and the whole
// header (format version, fields, key ring, wrapped DEK, key commitment),
// so a ciphertext moved to another topic, field or record, or given
// another header, fails to open. Open tells a forged header, a truncated
// ciphertext, an unknown key version, a tampered ciphertext and a KMS
// refusal or outage apart (ErrForgedHeader, ErrTruncated,
// ErrUnknownKeyVersion, ErrTampered, ErrAccessDenied, ErrKMSUnavailable),
// and leaves the record untouched on error, for package quarantine.
//
// Sub-packages: batch (the record batch codec), vaultkms (the KMS on
// Vault Transit with cert auth by SVID), quarantine (undecryptable
// records as files), kmstest (an in-memory KMS for tests).
package recordcrypt
