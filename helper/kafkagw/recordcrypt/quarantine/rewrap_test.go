package quarantine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
)

// version is the key ring version the stored record id's header names.
func version(t *testing.T, s *Store, id string) int {
	t.Helper()
	r, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	_, h, why := encHeader(r)
	v, _ := recordcrypt.WrappedKeyVersion(h.WrappedKey)
	if why != "" {
		t.Fatalf("%s: %s", id, why)
	}
	return v
}

// opens reports whether the stored record id opens with kms.
func opens(t *testing.T, s *Store, kms recordcrypt.KMS, id string) error {
	r, _ := s.Get(id)
	k := r.Kmsg()
	o, _ := recordcrypt.NewOpener(kms, recordcrypt.OpenerConfig{})
	_, err := o.Open(context.Background(), r.Topic, &k, nil)
	if err == nil && !strings.HasPrefix(string(k.Value), "value-") {
		t.Fatalf("%s opened to %q", id, k.Value)
	}
	return err
}

// TestRewrap: after a rotation, every sealed record gets a v2 header
// that still opens; a plaintext record is skipped; a dry run writes
// nothing; a second run changes nothing and asks the KMS at most once
// per ring.
func TestRewrap(t *testing.T) {
	kms := kmstest.New("r")
	s := sealedStore(t, kms, "access_denied", "tampered", "not_encrypted", "unknown_key_version")
	kms.Rotate("r")
	ids, _ := s.List()
	ctx := context.Background()
	sum, err := Rewrap(ctx, s, kms, Selection{}, true)
	t.Logf("dry run: %+v, %v", sum, err)
	if err != nil || sum.Count("would rewrap") != 3 || version(t, s, ids[0]) != 1 {
		t.Fatalf("dry run: %+v, %v", sum, err)
	}
	sum, err = Rewrap(ctx, s, kms, Selection{}, false)
	t.Logf("run 1: %+v, %v", sum, err)
	if err != nil || sum.Err() != nil || sum.Count("rewrapped") != 3 || sum.Count("skipped") != 1 {
		t.Fatalf("run 1: %+v, %v", sum, err)
	}
	for _, o := range sum.Outcomes {
		if o.Action == "rewrapped" {
			if v := version(t, s, o.ID); v != 2 || !strings.Contains(o.Why, "v1 → v2") {
				t.Errorf("%s: v%d after rewrap (%s)", o.ID, v, o.Why)
			}
			if err := opens(t, s, kms, o.ID); err != nil {
				t.Errorf("%s does not open after rewrap: %v", o.ID, err)
			}
		}
	}
	before := kms.Rewraps()
	sum, err = Rewrap(ctx, s, kms, Selection{}, false)
	t.Logf("run 2: %+v, %v", sum, err)
	if err != nil || sum.Count("rewrapped") != 0 || kms.Rewraps()-before > 1 {
		t.Fatalf("run 2: %+v, %v, %d KMS calls", sum, err, kms.Rewraps()-before)
	}
}

// TestRewrapStopsOnRefusal: a KMS refusal ends the run with an error and
// changes nothing.
func TestRewrapStopsOnRefusal(t *testing.T) {
	kms := kmstest.New("r")
	s := sealedStore(t, kms, "access_denied", "access_denied")
	kms.Rotate("r")
	kms.Deny("rewrap", "r", true)
	sum, err := Rewrap(context.Background(), s, kms, Selection{}, false)
	if !errors.Is(err, recordcrypt.ErrAccessDenied) || sum.Count("failed") != 1 {
		t.Fatalf("refused rewrap: %+v, %v", sum, err)
	}
	ids, _ := s.List()
	for _, id := range ids {
		if v := version(t, s, id); v != 1 {
			t.Errorf("%s changed to v%d", id, v)
		}
	}
}

// TestSetHeadersKeepsCount: the header count cannot change, and a
// rewritten entry reads back whole.
func TestSetHeadersKeepsCount(t *testing.T) {
	s := sealedStore(t, kmstest.New("r"), "access_denied")
	ids, _ := s.List()
	if err := s.SetHeaders(ids[0], nil); err == nil {
		t.Fatal("dropping every header accepted")
	}
	r, _ := s.Get(ids[0])
	r.Headers[0].Value = []byte("cam-8")
	if err := s.SetHeaders(ids[0], r.Headers); err != nil {
		t.Fatal(err)
	}
	again, err := s.Get(ids[0])
	if err != nil || string(again.Headers[0].Value) != "cam-8" || string(again.Value) != string(r.Value) {
		t.Fatalf("read back %+v, %v", again, err)
	}
}
