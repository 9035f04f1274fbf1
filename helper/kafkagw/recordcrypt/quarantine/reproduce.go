package quarantine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// reasonPolicy says, for each quarantine reason (recordcrypt.Reason
// labels), whether Reproduce re-produces it by default ("") or why not.
// A record that failed for a cause outside it (no decrypt right yet, the
// KMS down, a key version not yet or no longer allowed) can open once
// the cause is fixed; a record that failed for its content never will.
var reasonPolicy = map[string]string{
	"access_denied":       "",
	"kms_unavailable":     "",
	"unknown_key_version": "",
	"tampered":            "its ciphertext failed authentication: produced again it is only quarantined again",
	"forged_header":       "its edgeid-enc header is forged or corrupt: produced again it is only quarantined again",
	"truncated":           "its ciphertext is truncated: produced again it is only quarantined again",
	"not_encrypted":       "plaintext withheld from an encrypted topic: producing it again writes plaintext again",
	"other":               "quarantined for an unknown reason",
}

// DefaultReasons are the reasons Reproduce re-produces when Selection
// names none.
func DefaultReasons() []string {
	var out []string
	for r, why := range reasonPolicy {
		if why == "" {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// Reasons are every quarantine reason, sorted.
func Reasons() []string {
	out := make([]string, 0, len(reasonPolicy))
	for r := range reasonPolicy {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Selection says which stored records a run handles.
type Selection struct {
	// Topic, when set, limits the run to that topic's records.
	Topic string
	// Reasons are the quarantine reasons to re-produce; nil means
	// DefaultReasons. Rewrap ignores it.
	Reasons []string
}

// Validate checks the reasons named.
func (s Selection) Validate() error {
	for _, r := range s.Reasons {
		if _, ok := reasonPolicy[r]; !ok {
			return fmt.Errorf("quarantine: unknown reason %q (known: %s)", r, strings.Join(Reasons(), ", "))
		}
	}
	if s.Topic != "" {
		return ValidTopic(s.Topic)
	}
	return nil
}

// Outcome is what a run did with one stored record. It never holds the
// record's content.
type Outcome struct {
	ID     string
	Reason string
	// Action is "produced", "would produce", "rewrapped", "would rewrap",
	// "skipped" or "failed".
	Action string
	// Why explains a skip or a rewrap; Err is the failure.
	Why string
	Err error
}

// Summary is every record's outcome, in the store's order.
type Summary struct {
	Outcomes []Outcome
}

// Count is the number of outcomes with action.
func (s *Summary) Count(action string) int {
	n := 0
	for _, o := range s.Outcomes {
		if o.Action == action {
			n++
		}
	}
	return n
}

// Err names every failed record; nil when none failed.
func (s *Summary) Err() error {
	var errs []error
	for _, o := range s.Outcomes {
		if o.Action == "failed" {
			errs = append(errs, fmt.Errorf("%s: %w", o.ID, o.Err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("quarantine: %d record(s) failed: %w", len(errs), errors.Join(errs...))
}

// Producer is what Reproduce needs of a Kafka client (*kgo.Client): it
// must produce with acks=all, idempotently, to the partition each record
// names (kgo.ManualPartitioner).
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	Flush(ctx context.Context) error
}

// Reproduce produces each selected record of s again, exactly as stored
// (key, value, headers including edgeid-enc, timestamp), to the topic and
// partition it came from, and marks it reproduced once the brokers have
// acknowledged it, so that a second run produces nothing. A record whose
// produce or mark fails stays unmarked and is reported as failed; a crash
// between the acknowledgement and the mark leaves it unmarked too, and
// the next run produces it once more (at least once). With dryRun nothing
// is produced or marked.
func Reproduce(ctx context.Context, s *Store, p Producer, sel Selection, dryRun bool) (*Summary, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	reasons := sel.Reasons
	if reasons == nil {
		reasons = DefaultReasons()
	}
	sum, recs, err := s.selectRecords(sel.Topic, func(r *Record) (string, bool) {
		if slices.Contains(reasons, r.Reason) {
			return "", true
		}
		why := reasonPolicy[r.Reason]
		if why == "" {
			why = "reason not selected (--reasons)"
		}
		return "reason " + r.Reason + ": " + why, false
	})
	if err != nil {
		return nil, err
	}
	if dryRun {
		for i, r := range recs {
			if r != nil {
				sum.Outcomes[i].Action = "would produce"
			}
		}
		return sum, nil
	}
	return produceAll(ctx, s, p, sum, recs)
}

// produceAll produces recs[i] for each selected outcome i and sets the
// outcome from its promise: produced once acknowledged and marked, failed
// otherwise. A record still unacknowledged when Flush gives up counts as
// failed; if its acknowledgement comes later it is still marked (only the
// summary already returned says failed).
func produceAll(ctx context.Context, s *Store, p Producer, sum *Summary, recs []*Record) (*Summary, error) {
	var mu sync.Mutex
	done := false
	for i, r := range recs {
		if r == nil {
			continue
		}
		p.Produce(ctx, toKgo(r), func(_ *kgo.Record, err error) {
			if err == nil {
				err = s.MarkReproduced(r.ID())
			}
			mu.Lock()
			defer mu.Unlock()
			if done {
				return
			}
			sum.Outcomes[i].Action, sum.Outcomes[i].Err = "produced", err
			if err != nil {
				sum.Outcomes[i].Action = "failed"
			}
		})
	}
	ferr := p.Flush(ctx)
	mu.Lock()
	defer mu.Unlock()
	done = true
	for i, r := range recs {
		if r != nil && sum.Outcomes[i].Action == "" {
			sum.Outcomes[i].Action, sum.Outcomes[i].Err = "failed", fmt.Errorf("not acknowledged: %w", cmp.Or(ferr, errors.New("no answer")))
		}
	}
	out := &Summary{Outcomes: slices.Clone(sum.Outcomes)}
	if ferr != nil {
		return out, fmt.Errorf("quarantine: flush: %w", ferr)
	}
	return out, nil
}

// selectRecords reads every record of topic (every topic when empty) and
// sorts each into the summary: skipped (already reproduced, or refused by
// pick, with why), failed (unreadable), or selected. recs[i] is the
// selected record of outcome i, nil for the others.
func (s *Store) selectRecords(topic string, pick func(*Record) (string, bool)) (*Summary, []*Record, error) {
	ids, err := s.List()
	if err != nil {
		return nil, nil, err
	}
	sum := &Summary{}
	var recs []*Record
	for _, id := range ids {
		if t, _, _, _ := ParseID(id); topic != "" && t != topic {
			continue
		}
		o := Outcome{ID: id}
		r, err := s.Get(id)
		switch {
		case err != nil:
			o.Action, o.Err, r = "failed", err, nil
		case r.Reproduced:
			o.Reason, o.Action, o.Why, r = r.Reason, "skipped", "already reproduced", nil
		default:
			o.Reason = r.Reason
			if why, ok := pick(r); !ok {
				o.Action, o.Why, r = "skipped", why, nil
			}
		}
		sum.Outcomes = append(sum.Outcomes, o)
		recs = append(recs, r)
	}
	return sum, recs, nil
}

// toKgo is r as a record to produce: content exactly as stored, to the
// partition it came from.
func toKgo(r *Record) *kgo.Record {
	kr := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return kr
}
