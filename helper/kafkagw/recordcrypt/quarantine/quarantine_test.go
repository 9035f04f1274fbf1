package quarantine

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func sample() *Record {
	return &Record{
		Topic: "site-a.detections-v2", Partition: 3, Offset: 1234,
		Timestamp: time.Date(2026, 12, 7, 1, 2, 3, 4000000, time.UTC),
		Key:       nil, Value: []byte{0, 1, 2, 0xff, 'x'},
		Headers: []Header{{Key: "edgeid-enc", Value: []byte{1, 1, 9}}, {Key: "nullv"}, {Key: "empty", Value: []byte{}}},
		Reason:  "access_denied", Detail: "recordcrypt: KMS denied access to the key ring",
	}
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	if added, err := s.Put(want); err != nil || !added {
		t.Fatalf("put: added %v, %v", added, err)
	}
	other := sample()
	other.Offset, other.Key, other.Value = 7, []byte("k"), nil
	if _, err := s.Put(other); err != nil {
		t.Fatal(err)
	}
	ids, err := s.List()
	if err != nil || !reflect.DeepEqual(ids, []string{"site-a.detections-v2-3-7", "site-a.detections-v2-3-1234"}) {
		t.Fatalf("list: %v %v", ids, err)
	}
	for _, w := range []*Record{want, other} {
		got, err := s.Get(w.ID())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("read back %+v\nwant %+v", got, w)
		}
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %o, want 700", st.Mode().Perm())
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, _ error) error {
		if !fi.IsDir() && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", p, fi.Mode().Perm())
		}
		return nil
	})
}

// TestPutIdempotent: the same record twice is stored once, and the first
// copy is kept.
func TestPutIdempotent(t *testing.T) {
	s, _ := Open(t.TempDir())
	r := sample()
	s.Put(r)
	again := sample()
	again.Reason = "tampered"
	if added, err := s.Put(again); err != nil || added {
		t.Fatalf("second put: added %v, %v", added, err)
	}
	got, _ := s.Get(r.ID())
	if got.Reason != "access_denied" {
		t.Fatalf("reason %q: the second put replaced the first", got.Reason)
	}
	if err := s.MarkReproduced(r.ID()); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(r.ID()); !got.Reproduced {
		t.Fatal("not marked reproduced")
	}
	if err := s.Remove(r.ID()); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.List(); len(ids) != 0 {
		t.Fatalf("after remove: %v", ids)
	}
}

// TestInterruptedWriteInvisible: a temporary directory left by a crash is
// not listed, and Open removes it.
func TestInterruptedWriteInvisible(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	s.Put(sample())
	half := filepath.Join(dir, ".t-0-1.tmp123")
	os.Mkdir(half, 0o700)
	os.WriteFile(filepath.Join(half, "value"), []byte("x"), 0o600)
	if ids, _ := s.List(); len(ids) != 1 {
		t.Fatalf("list sees %v", ids)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(half); !os.IsNotExist(err) {
		t.Fatal("Open left the interrupted write")
	}
}

func TestHostileTopicsRefused(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, topic := range []string{"", ".", "..", "../etc", "a/b", "a\x00b", string(make([]byte, 250))} {
		r := sample()
		r.Topic = topic
		if _, err := s.Put(r); err == nil {
			t.Errorf("topic %q accepted", topic)
		}
	}
	r := sample()
	r.Offset = -1
	if _, err := s.Put(r); err == nil {
		t.Error("negative offset accepted")
	}
	for _, id := range []string{"../x-1-2", "x-1", "x-a-2", "-1-2", "x-1--2", "a/b-1-2"} {
		if _, _, _, err := ParseID(id); err == nil {
			t.Errorf("id %q parsed", id)
		}
	}
}

func TestParseID(t *testing.T) {
	topic, p, o, err := ParseID("a-b-c-12-345")
	if err != nil || topic != "a-b-c" || p != 12 || o != 345 {
		t.Fatalf("got %q %d %d %v", topic, p, o, err)
	}
}
