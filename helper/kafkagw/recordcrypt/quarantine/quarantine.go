// Package quarantine keeps records a consumer-side gateway could not
// decrypt, as files, so that none is lost and each can be re-produced
// later (edgeid kafka reproduce).
//
//	<dir>/
//	  <topic>-<partition>-<offset>/     one record, made whole or not at all
//	    meta.json     topic, partition, offset, timestamp, reason, key_null, value_null
//	    key           the record key as received (absent when null)
//	    value         the record value as received (absent when null)
//	    headers.json  the headers as received, values base64 (null kept)
//	    reproduced    present once the record was re-produced
//	  .<id>.tmp*/     a record being written (ignored, removed on Open)
//
// A record is written into a temporary directory, every file with
// fsutil's atomic write (mode 0600), and the directory is then renamed to
// its id: a reader never sees half a record. The id is stable per record,
// so quarantining a record twice keeps the first copy (idempotent), and
// MarkReproduced lets a re-run skip what was already re-produced.
package quarantine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Record is one quarantined record: its content exactly as received and
// where it came from.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	// Key and Value are nil for a null key or value.
	Key, Value []byte
	Headers    []Header
	// Reason says why it could not be decrypted (recordcrypt.Reason).
	Reason string
	// Detail is the error text, for people.
	Detail string
	// Reproduced is set once MarkReproduced was called for the record.
	Reproduced bool
}

// Header is a record header; Value is nil for a null value.
type Header struct {
	Key   string
	Value []byte
}

// ID is the record's stable identifier, also its directory name:
// <topic>-<partition>-<offset>.
func (r *Record) ID() string {
	return r.Topic + "-" + strconv.FormatInt(int64(r.Partition), 10) + "-" + strconv.FormatInt(r.Offset, 10)
}

// ParseID splits an id into topic, partition and offset (a topic may
// contain '-': the last two fields are the numbers).
func ParseID(id string) (topic string, partition int32, offset int64, err error) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", 0, 0, fmt.Errorf("quarantine: id %q: want topic-partition-offset", id)
	}
	j := strings.LastIndexByte(id[:i], '-')
	if j <= 0 {
		return "", 0, 0, fmt.Errorf("quarantine: id %q: want topic-partition-offset", id)
	}
	p, perr := strconv.ParseInt(id[j+1:i], 10, 32)
	o, oerr := strconv.ParseInt(id[i+1:], 10, 64)
	if perr != nil || oerr != nil || p < 0 || o < 0 || ValidTopic(id[:j]) != nil {
		return "", 0, 0, fmt.Errorf("quarantine: id %q: want topic-partition-offset", id)
	}
	return id[:j], int32(p), o, nil
}

// ValidTopic checks a Kafka topic name (1 to 249 of [a-zA-Z0-9._-], not
// "." or ".."). The topic comes from a broker, which is not trusted, and
// becomes a directory name.
func ValidTopic(t string) error {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return fmt.Errorf("quarantine: topic %q is not a valid Kafka topic name", t)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("quarantine: topic %q is not a valid Kafka topic name", t)
		}
	}
	return nil
}

func (r *Record) validate() error {
	if err := ValidTopic(r.Topic); err != nil {
		return err
	}
	if r.Partition < 0 || r.Offset < 0 {
		return errors.New("quarantine: partition and offset must not be negative")
	}
	return nil
}
