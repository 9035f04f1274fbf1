package quarantine

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
)

// Rewrap gives each selected record of s that is not yet reproduced, and
// whose edgeid-enc header names a key ring version below the ring's
// newest, a header whose wrapped DEK is re-wrapped by rw (Vault's
// transit/rewrap: the same DEK under the newest version), replacing the
// entry's headers.json atomically. The record still opens (the AAD leaves
// the wrapped DEK out), and once every record is re-wrapped the ring's
// min_decryption_version can be raised. The newest version of a ring is
// learnt from its first re-wrap, so a second run changes nothing (and
// asks the KMS once per ring). With dryRun nothing is written.
//
// A KMS refusal or outage stops the run (every record would fail the
// same); a record the KMS cannot re-wrap (a version below
// min_decryption_version, a wrapped key that does not unwrap) is reported
// as failed and the run goes on.
func Rewrap(ctx context.Context, s *Store, rw recordcrypt.Rewrapper, sel Selection, dryRun bool) (*Summary, error) {
	if err := (Selection{Topic: sel.Topic}).Validate(); err != nil {
		return nil, err
	}
	sum, recs, err := s.selectRecords(sel.Topic, func(r *Record) (string, bool) {
		_, _, why := encHeader(r)
		return why, why == ""
	})
	if err != nil {
		return nil, err
	}
	latest := map[string]int{} // ring → newest version seen
	for i, r := range recs {
		if r == nil {
			continue
		}
		o := &sum.Outcomes[i]
		if err := rewrapOne(ctx, s, rw, r, o, latest, dryRun); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// rewrapOne re-wraps r's data key if its version is below the newest
// known (asking rw when none is known yet) and sets o. It returns an
// error only for a KMS refusal or outage, which ends the run.
func rewrapOne(ctx context.Context, s *Store, rw recordcrypt.Rewrapper, r *Record, o *Outcome, latest map[string]int, dryRun bool) error {
	at, h, _ := encHeader(r)
	v, _ := recordcrypt.WrappedKeyVersion(h.WrappedKey)
	if l, ok := latest[h.Ring]; ok && v >= l {
		o.Action, o.Why = "skipped", fmt.Sprintf("key ring %s: already at its newest version v%d", h.Ring, l)
		return nil
	}
	wrapped, err := rw.RewrapDataKey(ctx, h.Ring, h.WrappedKey)
	if err != nil {
		o.Action, o.Err = "failed", err
		if errors.Is(err, recordcrypt.ErrAccessDenied) || errors.Is(err, recordcrypt.ErrKMSUnavailable) {
			return fmt.Errorf("quarantine: rewrap %s: %w", r.ID(), err)
		}
		return nil
	}
	nv, ok := recordcrypt.WrappedKeyVersion(wrapped)
	if !ok {
		o.Action, o.Err = "failed", errors.New("the KMS returned a wrapped key that names no version")
		return nil
	}
	latest[h.Ring] = max(latest[h.Ring], nv)
	if nv <= v {
		o.Action, o.Why = "skipped", fmt.Sprintf("key ring %s: already at its newest version v%d", h.Ring, nv)
		return nil
	}
	o.Why = fmt.Sprintf("key ring %s: v%d → v%d", h.Ring, v, nv)
	if dryRun {
		o.Action = "would rewrap"
		return nil
	}
	hdr, err := recordcrypt.ReplaceWrappedKey(r.Headers[at].Value, wrapped)
	if err == nil {
		r.Headers[at].Value = hdr
		err = s.SetHeaders(r.ID(), r.Headers)
	}
	o.Action, o.Err = "rewrapped", err
	if err != nil {
		o.Action = "failed"
	}
	return nil
}

// encHeader finds r's one edgeid-enc header and parses it; why says why
// the record cannot be re-wrapped ("" when it can).
func encHeader(r *Record) (at int, h recordcrypt.Header, why string) {
	at = -1
	for i, hd := range r.Headers {
		if hd.Key == recordcrypt.HeaderKey {
			if at >= 0 {
				return -1, h, "two edgeid-enc headers"
			}
			at = i
		}
	}
	if at < 0 {
		return -1, h, "no edgeid-enc header (plaintext)"
	}
	h, err := recordcrypt.ParseHeader(r.Headers[at].Value)
	if err != nil {
		return -1, h, "its edgeid-enc header does not parse"
	}
	if _, ok := recordcrypt.WrappedKeyVersion(h.WrappedKey); !ok {
		return -1, h, "its wrapped data key names no key ring version"
	}
	return at, h, ""
}
