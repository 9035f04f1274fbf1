package quarantine

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"
)

// Limits on what a reader accepts from the directory.
const (
	maxMetaBytes    = 64 << 10
	maxHeadersBytes = 4 << 20
	maxFieldBytes   = 64 << 20
)

// Store is a quarantine directory.
type Store struct {
	dir string
}

// Open returns the Store of dir, made 0700 if missing, and removes the
// temporary directories of writes a crash interrupted.
func Open(dir string) (*Store, error) {
	if err := fsutil.MkdirAllMode(dir, 0o700); err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp") {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return &Store{dir: dir}, nil
}

type meta struct {
	Topic      string    `json:"topic"`
	Partition  int32     `json:"partition"`
	Offset     int64     `json:"offset"`
	Timestamp  time.Time `json:"timestamp"`
	Reason     string    `json:"reason"`
	Detail     string    `json:"detail,omitempty"`
	KeyNull    bool      `json:"key_null"`
	ValueNull  bool      `json:"value_null"`
	NumHeaders int       `json:"num_headers"`
}

type jsonHeader struct {
	Key   string `json:"key"`
	Value []byte `json:"value"` // base64; null for a null value
}

// Put stores r. A record with the same id already stored is kept as it is
// (reported by added false).
func (s *Store) Put(r *Record) (added bool, err error) {
	if err := r.validate(); err != nil {
		return false, err
	}
	final := filepath.Join(s.dir, r.ID())
	if _, err := os.Lstat(final); err == nil {
		return false, nil
	}
	tmp, err := os.MkdirTemp(s.dir, "."+r.ID()+".tmp")
	if err != nil {
		return false, fmt.Errorf("quarantine: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := writeFiles(tmp, r); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Lstat(final); serr == nil {
			return false, nil // another writer won the race
		}
		return false, fmt.Errorf("quarantine: %w", err)
	}
	if err := fsutil.SyncDir(s.dir); err != nil {
		return true, fmt.Errorf("quarantine: %w", err)
	}
	return true, nil
}

func writeFiles(dir string, r *Record) error {
	m := meta{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC(),
		Reason: r.Reason, Detail: r.Detail, KeyNull: r.Key == nil, ValueNull: r.Value == nil, NumHeaders: len(r.Headers)}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	hb, err := headersJSON(r.Headers)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		skip bool
	}{
		{"key", r.Key, r.Key == nil},
		{"value", r.Value, r.Value == nil},
		{"headers.json", hb, false},
		{"meta.json", mb, false},
	}
	for _, f := range files {
		if f.skip {
			continue
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("quarantine: %w", err)
		}
	}
	return nil
}

func headersJSON(headers []Header) ([]byte, error) {
	hs := make([]jsonHeader, len(headers))
	for i, h := range headers {
		hs[i] = jsonHeader{Key: h.Key, Value: h.Value}
	}
	hb, err := json.MarshalIndent(hs, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	return hb, nil
}

// SetHeaders replaces the headers of the stored record id (edgeid kafka
// rewrap gives it a re-wrapped edgeid-enc header) with one atomic write
// of its headers.json: a reader or a crash sees the old headers or the
// new ones. The number of headers cannot change.
func (s *Store) SetHeaders(id string, headers []Header) error {
	r, err := s.Get(id)
	if err != nil {
		return err
	}
	if len(headers) != len(r.Headers) {
		return fmt.Errorf("quarantine: %s: %d headers, the record has %d", id, len(headers), len(r.Headers))
	}
	hb, err := headersJSON(headers)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(s.dir, id, "headers.json"), hb, 0o600); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	return nil
}

// List returns the ids of every stored record, by topic, partition and
// offset (numerically: the order to produce them again).
func (s *Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, _, _, err := ParseID(e.Name()); err == nil {
			ids = append(ids, e.Name())
		}
	}
	slices.SortFunc(ids, compareIDs)
	return ids, nil
}

func compareIDs(a, b string) int {
	ta, pa, oa, _ := ParseID(a)
	tb, pb, ob, _ := ParseID(b)
	return cmp.Or(strings.Compare(ta, tb), cmp.Compare(pa, pb), cmp.Compare(oa, ob))
}

// Get reads the record id back, exactly as it was put.
func (s *Store) Get(id string) (*Record, error) {
	if _, _, _, err := ParseID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.dir, id)
	mb, err := fsutil.ReadFileLimited(filepath.Join(dir, "meta.json"), maxMetaBytes)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %s: %w", id, err)
	}
	var m meta
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("quarantine: %s/meta.json: %w", id, err)
	}
	r := &Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp, Reason: m.Reason, Detail: m.Detail}
	if r.ID() != id {
		return nil, fmt.Errorf("quarantine: %s/meta.json names record %s", id, r.ID())
	}
	if r.Key, err = readField(dir, "key", m.KeyNull); err != nil {
		return nil, err
	}
	if r.Value, err = readField(dir, "value", m.ValueNull); err != nil {
		return nil, err
	}
	hb, err := fsutil.ReadFileLimited(filepath.Join(dir, "headers.json"), maxHeadersBytes)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %s: %w", id, err)
	}
	var hs []jsonHeader
	if err := json.Unmarshal(hb, &hs); err != nil || len(hs) != m.NumHeaders {
		return nil, fmt.Errorf("quarantine: %s/headers.json: %d headers, meta says %d (%v)", id, len(hs), m.NumHeaders, err)
	}
	for _, h := range hs {
		r.Headers = append(r.Headers, Header(h))
	}
	_, err = os.Lstat(filepath.Join(dir, "reproduced"))
	r.Reproduced = err == nil
	return r, nil
}

func readField(dir, name string, null bool) ([]byte, error) {
	if null {
		return nil, nil
	}
	b, err := fsutil.ReadFileLimited(filepath.Join(dir, name), maxFieldBytes)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// MarkReproduced records that id was re-produced, so that a re-run of
// reproduce skips it.
func (s *Store) MarkReproduced(id string) error {
	if _, _, _, err := ParseID(id); err != nil {
		return err
	}
	dir := filepath.Join(s.dir, id)
	if _, err := os.Stat(filepath.Join(dir, "meta.json")); err != nil {
		return fmt.Errorf("quarantine: %s: %w", id, err)
	}
	stamp := []byte(time.Now().UTC().Format(time.RFC3339Nano) + "\n")
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "reproduced"), stamp, 0o600); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	return nil
}

// Remove deletes the record id.
func (s *Store) Remove(id string) error {
	if _, _, _, err := ParseID(id); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(s.dir, id)); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	return fsutil.SyncDir(s.dir)
}
