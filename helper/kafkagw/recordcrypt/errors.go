package recordcrypt

import "errors"

// Errors of Open, Seal and the KMS, each wrapped with its details; test
// them with errors.Is. Reason names each for counting and for quarantine.
var (
	// ErrNotEncrypted is a record that carries no encryption header.
	ErrNotEncrypted = errors.New("recordcrypt: record is not encrypted")
	// ErrForgedHeader is an encryption header that does not parse, names
	// an unknown format version or field, appears twice, names a key ring
	// other than the topic's, or names a data key that is not the one
	// the header commits to (or that the KMS cannot unwrap at all).
	ErrForgedHeader = errors.New("recordcrypt: forged or corrupt encryption header")
	// ErrTruncated is an encrypted field shorter than a nonce and a tag.
	ErrTruncated = errors.New("recordcrypt: truncated ciphertext")
	// ErrTampered is a field that fails AES-GCM authentication under the
	// right data key: its ciphertext or tag changed, or it was moved to
	// another topic, record field or header (the AAD differs).
	ErrTampered = errors.New("recordcrypt: ciphertext failed authentication")
	// ErrUnknownKeyVersion is a wrapped data key whose key ring version
	// the KMS does not have, or no longer allows to decrypt.
	ErrUnknownKeyVersion = errors.New("recordcrypt: unknown key version")
	// ErrAccessDenied is a KMS refusal: the caller's identity may not use
	// the key ring for this operation.
	ErrAccessDenied = errors.New("recordcrypt: KMS denied access to the key ring")
	// ErrKMSUnavailable is a KMS that cannot be reached or fails.
	ErrKMSUnavailable = errors.New("recordcrypt: KMS unavailable")
	// ErrBadWrappedKey is a wrapped data key the KMS cannot unwrap under
	// the key ring: it was not made by that ring or was altered. Open
	// reports it as ErrForgedHeader too.
	ErrBadWrappedKey = errors.New("recordcrypt: wrapped data key does not unwrap")
	// ErrOutageBound is a producer that could not get a fresh data key
	// and whose current one has reached its outage bound: it fails
	// closed rather than encrypt more under that key.
	ErrOutageBound = errors.New("recordcrypt: data key past its outage bound")
	// ErrAlreadyEncrypted is a record given to Seal that already carries
	// an encryption header.
	ErrAlreadyEncrypted = errors.New("recordcrypt: record already carries an encryption header")
)

// reasons maps each error to a short, stable label.
var reasons = []struct {
	err   error
	label string
}{
	{ErrNotEncrypted, "not_encrypted"},
	{ErrBadWrappedKey, "forged_header"},
	{ErrForgedHeader, "forged_header"},
	{ErrTruncated, "truncated"},
	{ErrTampered, "tampered"},
	{ErrUnknownKeyVersion, "unknown_key_version"},
	{ErrAccessDenied, "access_denied"},
	{ErrKMSUnavailable, "kms_unavailable"},
	{ErrOutageBound, "outage_bound"},
	{ErrAlreadyEncrypted, "already_encrypted"},
}

// Reason is a short label for err (for example "tampered" or
// "access_denied"), suitable as a metric label or a quarantine reason;
// "other" for an error of none of the kinds above.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}
