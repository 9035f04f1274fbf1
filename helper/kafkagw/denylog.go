package kafkagw

import (
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/internal/logonce"
)

// denialLog says whether a denial should be logged: once per (actor,
// resource, operation) per interval (internal/logonce).
type denialLog struct{ l *logonce.Limiter[denialKey] }

type denialKey struct {
	actor string
	res   policy.Resource
	op    policy.Operation
}

func newDenialLog(interval time.Duration) *denialLog {
	return &denialLog{l: logonce.New[denialKey](interval)}
}

func (d *denialLog) shouldLog(actor string, res policy.Resource, op policy.Operation, now time.Time) bool {
	return d.l.Allow(denialKey{actor, res, op}, now)
}
