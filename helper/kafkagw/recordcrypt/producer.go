package recordcrypt

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ProducerConfig bounds how long a producer uses one data key.
type ProducerConfig struct {
	// MaxRecords is how many records one data key seals before a new one
	// is fetched; default 1<<20.
	MaxRecords uint64
	// MaxAge is how long one data key is used; default 1h.
	MaxAge time.Duration
	// OutageRecords and OutageAge extend MaxRecords and MaxAge while the
	// KMS cannot be reached (or refuses): the current key keeps sealing
	// until either extension is used up, then Seal fails closed with
	// ErrOutageBound. Defaults 1<<24 and 24h. Zero-length extensions are
	// set with NoOutageGrace.
	OutageRecords uint64
	OutageAge     time.Duration
	// NoOutageGrace makes Seal fail as soon as a key is due and the KMS
	// fails.
	NoOutageGrace bool
	// RetryInterval is the least time between two KMS attempts of one
	// key ring while they fail; default 5s.
	RetryInterval time.Duration
	// Logger receives refresh failures and the fail-closed event; no key
	// material is ever logged. Nil discards.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// maxUsesPerKey bounds the records one data key seals. Its nonces come
// from a counter (nonceSeq) and would allow far more; the bound keeps
// what one key exposes, and what one stolen key opens, small.
const maxUsesPerKey = 1 << 32

type producerConfig struct {
	maxRecords, outageRecords uint64
	maxAge, outageAge, retry  time.Duration
	log                       *slog.Logger
	now                       func() time.Time
}

func (c ProducerConfig) build() (producerConfig, error) {
	pc := producerConfig{maxRecords: c.MaxRecords, outageRecords: c.OutageRecords, maxAge: c.MaxAge,
		outageAge: c.OutageAge, retry: c.RetryInterval, log: c.Logger, now: c.Now}
	pc.maxRecords = orDefault(pc.maxRecords, 1<<20)
	pc.maxAge = orDefault(pc.maxAge, time.Hour)
	pc.retry = orDefault(pc.retry, 5*time.Second)
	if !c.NoOutageGrace {
		pc.outageRecords = orDefault(pc.outageRecords, 1<<24)
		pc.outageAge = orDefault(pc.outageAge, 24*time.Hour)
	}
	if pc.log == nil {
		pc.log = slog.New(slog.DiscardHandler)
	}
	if pc.now == nil {
		pc.now = time.Now
	}
	var errs []error
	if pc.maxAge < 0 || pc.outageAge < 0 || pc.retry < 0 {
		errs = append(errs, errors.New("recordcrypt: max_age, outage_age and retry_interval must not be negative"))
	}
	if pc.maxRecords > maxUsesPerKey || pc.outageRecords > maxUsesPerKey-pc.maxRecords {
		errs = append(errs, fmt.Errorf("recordcrypt: max_records + outage_records must not exceed %d records per data key", uint64(maxUsesPerKey)))
	}
	return pc, errors.Join(errs...)
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Producer seals records with data keys from a KMS: one current key per
// key ring, shared by every topic of the ring and replaced after
// MaxRecords or MaxAge. It is safe for concurrent use.
type Producer struct {
	kms    KMS
	cfg    producerConfig
	closed atomic.Bool
	mu     sync.Mutex
	rings  map[string]*ring
}

// NewProducer returns a Producer that gets its data keys from kms.
func NewProducer(kms KMS, cfg ProducerConfig) (*Producer, error) {
	if kms == nil {
		return nil, errors.New("recordcrypt: a KMS is required")
	}
	pc, err := cfg.build()
	if err != nil {
		return nil, err
	}
	return &Producer{kms: kms, cfg: pc, rings: map[string]*ring{}}, nil
}

// ring is one key ring's current data key and its refresh state.
type ring struct {
	name string
	cur  atomic.Pointer[dek]
	mu   sync.Mutex
	// refreshing is closed when the refresh in flight ends; nil when
	// none is.
	refreshing  chan struct{}
	lastAttempt time.Time
	failingFrom time.Time
	lastErr     error
	// closedLogged: the fail-closed event of this outage was logged.
	closedLogged bool
}

func (p *Producer) ring(name string) *ring {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rings[name]
	if r == nil {
		r = &ring{name: name}
		p.rings[name] = r
	}
	return r
}

// Close zeroes every data key held. Seal fails after it.
func (p *Producer) Close() {
	p.closed.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rings {
		if d := r.cur.Swap(nil); d != nil {
			d.zero()
		}
	}
}
