package kafkagw

import "github.com/prometheus/client_golang/prometheus"

// cryptMetrics are the encryption filter's counters. Labels are bounded:
// reasons are recordcrypt.Reason labels plus "corrupt_batch" and
// "passthrough_batch"; actions are the action* constants; compressions
// are the five codecs' names.
type cryptMetrics struct {
	sealed        prometheus.Counter
	sealedBatches *prometheus.CounterVec
	sealFailures  *prometheus.CounterVec
	opened        prometheus.Counter
	undecryptable *prometheus.CounterVec
	plaintext     *prometheus.CounterVec
}

func newCryptMetrics() (cryptMetrics, []prometheus.Collector) {
	c := cryptMetrics{
		sealed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeid_kafkagw_records_sealed_total", Help: "Record values encrypted on Produce.",
		}),
		sealedBatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeid_kafkagw_sealed_batches_total", Help: "Record batches encrypted on Produce, by the compression the producer sent them with.",
		}, []string{"compression"}),
		sealFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeid_kafkagw_seal_failures_total", Help: "Produce topics refused because their records could not be encrypted, by reason.",
		}, []string{"reason"}),
		opened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeid_kafkagw_records_opened_total", Help: "Records decrypted on Fetch.",
		}),
		undecryptable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeid_kafkagw_undecryptable_records_total", Help: "Fetched records of encrypted topics that could not be decrypted, by reason and action.",
		}, []string{"reason", "action"}),
		plaintext: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeid_kafkagw_plaintext_records_total", Help: "Fetched plaintext records of encrypted topics, by action.",
		}, []string{"action"}),
	}
	return c, []prometheus.Collector{c.sealed, c.sealedBatches, c.sealFailures, c.opened, c.undecryptable, c.plaintext}
}

func (m *Metrics) sealed(n int) {
	if m != nil && n > 0 {
		m.crypt.sealed.Add(float64(n))
	}
}

// sealedBatch counts a sealed batch by the codec it was produced with (a
// Compression name: bounded).
func (m *Metrics) sealedBatch(codec string) {
	if m != nil {
		m.crypt.sealedBatches.WithLabelValues(codec).Inc()
	}
}

func (m *Metrics) sealFailed(reason string) {
	if m != nil {
		m.crypt.sealFailures.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) opened(n int) {
	if m != nil && n > 0 {
		m.crypt.opened.Add(float64(n))
	}
}

func (m *Metrics) undecryptable(reason, action string) {
	if m != nil {
		m.crypt.undecryptable.WithLabelValues(reason, action).Inc()
	}
}

func (m *Metrics) plaintext(action string) {
	if m != nil {
		m.crypt.plaintext.WithLabelValues(action).Inc()
	}
}
