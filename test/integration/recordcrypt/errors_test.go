package recordcrypt

import (
	"bytes"
	"errors"
	"testing"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/vaultkms"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// withWrapped is rec with its header's wrapped key changed by f.
func withWrapped(t *testing.T, rec kmsg.Record, f func([]byte) []byte) kmsg.Record {
	t.Helper()
	rec.Headers = append([]kmsg.Header(nil), rec.Headers...)
	last := len(rec.Headers) - 1
	h, err := recordcrypt.ParseHeader(rec.Headers[last].Value)
	if err != nil {
		t.Fatal(err)
	}
	h.WrappedKey = f(bytes.Clone(h.WrappedKey))
	rec.Headers[last].Value = h.AppendTo(nil)
	return rec
}

func vaultErrors(t *testing.T, r *rig, consKMS *vaultkms.KMS, v1 kmsg.Record) {
	cases := []struct {
		name string
		edit func([]byte) []byte
		want error
	}{
		{"version Vault never had", func(b []byte) []byte { b[0] = 9; return b }, recordcrypt.ErrUnknownKeyVersion}, // v1 → v9
		{"wrapped key altered", func(b []byte) []byte { b[len(b)-6] ^= 0x01; return b }, recordcrypt.ErrForgedHeader},
		{"not a wrapped data key (version 0)", func([]byte) []byte { return []byte{0, 'x'} }, recordcrypt.ErrForgedHeader},
	}
	for _, tc := range cases {
		o, _ := recordcrypt.NewOpener(consKMS, recordcrypt.OpenerConfig{})
		rec := withWrapped(t, v1, tc.edit)
		_, err := o.Open(ctx, topic, &rec, nil)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	// A version below min_decryption_version is refused as unknown.
	r.write(t, "transit/keys/"+ring+"/config", map[string]any{"min_decryption_version": 2})
	o, _ := recordcrypt.NewOpener(consKMS, recordcrypt.OpenerConfig{})
	rec := v1
	if _, err := o.Open(ctx, topic, &rec, nil); !errors.Is(err, recordcrypt.ErrUnknownKeyVersion) {
		t.Errorf("v1 record under min_decryption_version 2: err %v, want ErrUnknownKeyVersion", err)
	}
	r.write(t, "transit/keys/"+ring+"/config", map[string]any{"min_decryption_version": 1})
	// The Opener that was refused remembers it for NegativeTTL; a new
	// one asks Vault again.
	rec = v1
	if _, err := o.Open(ctx, topic, &rec, nil); !errors.Is(err, recordcrypt.ErrUnknownKeyVersion) {
		t.Errorf("refusal not remembered: err %v", err)
	}
	o2, _ := recordcrypt.NewOpener(consKMS, recordcrypt.OpenerConfig{})
	rec.Headers = append([]kmsg.Header(nil), v1.Headers...)
	if _, err := o2.Open(ctx, topic, &rec, nil); err != nil {
		t.Errorf("v1 record after min_decryption_version 1 again: %v", err)
	}
}

// outage stops Vault: a producer holding a key keeps sealing up to its
// outage bound, then fails closed with ErrOutageBound wrapping
// ErrKMSUnavailable; a producer holding none fails at once.
func outage(t *testing.T, r *rig, prodKMS *vaultkms.KMS) {
	p, err := recordcrypt.NewProducer(prodKMS, recordcrypt.ProducerConfig{MaxRecords: 3, OutageRecords: 5})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := p.Sealer(recordcrypt.SealerConfig{Topic: topic, Ring: ring, Fields: recordcrypt.FieldValue})
	seal := func() error {
		rec := kmsg.Record{Value: []byte("v")}
		_, err := s.Seal(ctx, &rec, nil)
		return err
	}
	if err := seal(); err != nil {
		t.Fatal(err)
	}
	r.v.Stop(t)
	for i := 2; i <= 8; i++ {
		if err := seal(); err != nil {
			t.Fatalf("record %d, within 3 + 5 records: %v", i, err)
		}
	}
	err = seal()
	if !errors.Is(err, recordcrypt.ErrOutageBound) || !errors.Is(err, recordcrypt.ErrKMSUnavailable) {
		t.Fatalf("record 9: err %v, want ErrOutageBound wrapping ErrKMSUnavailable", err)
	}
	t.Logf("fail-closed error: %v", err)
	p2, _ := recordcrypt.NewProducer(prodKMS, recordcrypt.ProducerConfig{})
	s2, _ := p2.Sealer(recordcrypt.SealerConfig{Topic: topic, Ring: ring, Fields: recordcrypt.FieldValue})
	rec := kmsg.Record{Value: []byte("v")}
	if _, err := s2.Seal(ctx, &rec, nil); !errors.Is(err, recordcrypt.ErrKMSUnavailable) {
		t.Fatalf("a producer with no key while Vault is down: err %v, want ErrKMSUnavailable", err)
	}
}
