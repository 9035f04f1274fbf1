package kafkagw

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/batch"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/quarantine"
)

func startCryptCluster(t *testing.T) (*kfake.Cluster, func(id string) Sources, func(topics ...string) *kgo.Client) {
	ca := newCA(t)
	broker := svid(t, ca, "spiffe://"+td+"/cloud/kafka")
	btls := &tls.Config{ClientAuth: tls.RequireAnyClientCert, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		s, _ := broker.GetX509SVID()
		return &tls.Certificate{Certificate: [][]byte{s.Certificates[0].Raw}, PrivateKey: s.PrivateKey}, nil
	}}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(btls), kfake.SeedTopics(1, topicA, topicB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	sources := func(id string) Sources { return Sources{SVIDs: svid(t, ca, id), Bundles: ca.Bundle()} }
	direct := func(topics ...string) *kgo.Client {
		if len(topics) == 0 {
			topics = []string{topicA}
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DialTLSConfig(clientTLS(t, ca, idGW)),
			kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	return c, sources, direct
}

// startEncrypting runs an edge gateway encrypting topicA with kms.
func startEncrypting(t *testing.T, c *kfake.Cluster, src Sources, kms recordcrypt.KMS, mut func(*EncryptConfig)) (*Gateway, *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ec := &EncryptConfig{Topics: []string{"site-a.*"}, KMS: kms, QuarantineDir: t.TempDir(), NoOutageGrace: true}
	if mut != nil {
		mut(ec)
	}
	gw := runGateway(t, Config{Name: "edge", Mode: ModeEdge, Upstreams: c.ListenAddrs(), TrustDomain: td,
		Encrypt: ec, Logger: testLogger(t), Metrics: m}, src)
	return gw, m
}

func plainClient(t *testing.T, gw *Gateway, opts ...kgo.Opt) *kgo.Client {
	opts = append([]kgo.Opt{kgo.SeedBrokers(gw.BootstrapAddrs()...), kgo.RequestRetries(0), kgo.DisableIdempotentWrite(),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(5 * time.Second)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeN reads n records of topicA with cl.
func consumeN(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// TestEncryptRoundTrip: values produced through the edge gateway are
// stored sealed (each codec), come back as plaintext through it, and a
// topic outside the rules is untouched.
func TestEncryptRoundTrip(t *testing.T) {
	c, sources, direct := startCryptCluster(t)
	kms := kmstest.New(topicA)
	gw, m := startEncrypting(t, c, sources(idPipeA), kms, nil)
	var want []string
	for _, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		prod := plainClient(t, gw, kgo.ProducerBatchCompression(codec))
		for i := range 3 {
			v := fmt.Sprintf("secret-%d-%d-%s", codec, i, bytes.Repeat([]byte("x"), 200))
			want = append(want, v)
			if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: topicA, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	if err := plainClient(t, gw).ProduceSync(context.Background(), &kgo.Record{Topic: topicB, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range consumeN(t, direct(), len(want)) {
		if bytes.Contains(r.Value, []byte("secret")) || len(r.Headers) != 1 || r.Headers[0].Key != recordcrypt.HeaderKey {
			t.Fatalf("stored record %d is not sealed: %q", r.Offset, r.Value)
		}
	}
	got := consumeN(t, plainClient(t, gw, kgo.ConsumeTopics(topicA), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), len(want))
	for i, r := range got {
		if string(r.Value) != want[i] || len(r.Headers) != 0 {
			t.Fatalf("record %d: %q (headers %v), want %q", i, r.Value, r.Headers, want[i])
		}
	}
	if n := testutil.ToFloat64(m.crypt.sealed); n != float64(len(want)) {
		t.Fatalf("sealed metric %v, want %d", n, len(want))
	}
}

// TestEncryptRefusedAndUndecryptable: a producer the KMS refuses gets
// TOPIC_AUTHORIZATION_FAILED and nothing is stored; a consumer the KMS
// refuses gets the records still sealed, each quarantined and counted.
func TestEncryptRefusedAndUndecryptable(t *testing.T) {
	c, sources, _ := startCryptCluster(t)
	kms := kmstest.New(topicA)
	refusing := kmstest.New(topicA)
	refusing.Deny("generate", topicA, true)
	denied, dm := startEncrypting(t, c, sources(idPipeB), refusing, nil)
	err := plainClient(t, denied).ProduceSync(context.Background(), &kgo.Record{Topic: topicA, Value: []byte("refused")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce with generate denied: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if n := testutil.ToFloat64(dm.crypt.sealFailures.WithLabelValues("access_denied")); n != 1 {
		t.Fatalf("seal failures metric %v, want 1", n)
	}
	gw, _ := startEncrypting(t, c, sources(idPipeA), kms, nil)
	if err := plainClient(t, gw).ProduceSync(context.Background(), &kgo.Record{Topic: topicA, Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	qdir := t.TempDir()
	kms.Deny("decrypt", topicA, true)
	reader, m := startEncrypting(t, c, sources(idReader), kms, func(ec *EncryptConfig) { ec.QuarantineDir = qdir })
	got := consumeN(t, plainClient(t, reader, kgo.ConsumeTopics(topicA), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), 1)
	if string(got[0].Value) == "v" || len(got[0].Headers) != 1 {
		t.Fatalf("undecryptable record reached the app opened: %q", got[0].Value)
	}
	q, err := quarantine.Open(qdir)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := q.List()
	if err != nil || len(ids) != 1 {
		t.Fatalf("quarantine holds %v (%v), want one record", ids, err)
	}
	if n := testutil.ToFloat64(m.crypt.undecryptable.WithLabelValues("access_denied", actionQuarantined)); n < 1 {
		t.Fatalf("undecryptable metric %v", n)
	}
}

// TestPlaintextQuarantined: a plaintext record stored in an encrypted
// topic reaches the app, with plaintext = "quarantine", only as a marker
// at its offset; the record itself is in quarantine. A tombstone, never
// sealed, passes as stored.
func TestPlaintextQuarantined(t *testing.T) {
	c, sources, direct := startCryptCluster(t)
	cl := direct()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topicA, Value: []byte("plain")},
		&kgo.Record{Topic: topicA, Key: []byte("k")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	qdir := t.TempDir()
	gw, m := startEncrypting(t, c, sources(idReader), kmstest.New(topicA), func(ec *EncryptConfig) {
		ec.Plaintext, ec.QuarantineDir = PlaintextQuarantine, qdir
	})
	both := consumeN(t, plainClient(t, gw, kgo.ConsumeTopics(topicA), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), 2)
	if tomb := both[1]; tomb.Value != nil || string(tomb.Key) != "k" || len(tomb.Headers) != 0 {
		t.Fatalf("a tombstone (never sealed) was not passed as stored: %+v", tomb)
	}
	got := both[0]
	if got.Value != nil || got.Key != nil || got.Offset != 0 || len(got.Headers) != 1 ||
		got.Headers[0].Key != WithheldHeader || string(got.Headers[0].Value) != "plaintext" {
		t.Fatalf("app got %+v, want the withheld marker", got)
	}
	q, _ := quarantine.Open(qdir)
	ids, _ := q.List()
	if len(ids) != 1 {
		t.Fatalf("quarantine holds %v", ids)
	}
	if r, err := q.Get(ids[0]); err != nil || string(r.Value) != "plain" || r.Reason != "not_encrypted" {
		t.Fatalf("quarantined %+v (%v)", r, err)
	}
	if n := testutil.ToFloat64(m.crypt.plaintext.WithLabelValues(actionWithheld)); n != 1 {
		t.Fatalf("plaintext metric %v", n)
	}
}

// TestSealCode: each way sealing fails gets its documented Kafka error.
func TestSealCode(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   *kerr.Error
		reason string
	}{
		{fmt.Errorf("vault: %w", recordcrypt.ErrAccessDenied), kerr.TopicAuthorizationFailed, "access_denied"},
		{fmt.Errorf("x: %w", recordcrypt.ErrKMSUnavailable), kerr.KafkaStorageError, "kms_unavailable"},
		{fmt.Errorf("x: %w: %w", recordcrypt.ErrOutageBound, recordcrypt.ErrKMSUnavailable), kerr.KafkaStorageError, "kms_unavailable"},
		{recordcrypt.ErrOutageBound, kerr.KafkaStorageError, "outage_bound"},
		{context.Canceled, kerr.KafkaStorageError, "other"},
		{fmt.Errorf("partition 0: %w", batch.ErrChecksum), kerr.CorruptMessage, "corrupt_batch"},
		{fmt.Errorf("partition 0: %w", batch.ErrCorrupt), kerr.InvalidRecord, "corrupt_batch"},
		{fmt.Errorf("partition 0: %w", errPassthroughBatch), kerr.InvalidRecord, "passthrough_batch"},
		{recordcrypt.ErrAlreadyEncrypted, kerr.InvalidRecord, "already_encrypted"},
	} {
		if got := sealCode(tc.err); got != tc.code.Code {
			t.Errorf("%v: code %d, want %s", tc.err, got, tc.code)
		}
		if got := sealReason(tc.err); got != tc.reason {
			t.Errorf("%v: reason %q, want %q", tc.err, got, tc.reason)
		}
	}
}

// TestCorruptProduceBatch: a Produce batch with a bad CRC refuses its
// topic with CORRUPT_MESSAGE, and the connection stays usable.
func TestCorruptProduceBatch(t *testing.T) {
	c, sources, _ := startCryptCluster(t)
	gw, m := startEncrypting(t, c, sources(idPipeA), kmstest.New(topicA), nil)
	conn, err := net.Dial("tcp", gw.BootstrapAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	good := encodedBatch(t, []byte("v"))
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1 // breaks the CRC32C
	req := produceReq(7, -1, topicA)
	req.Topics[0].Partitions[0].Records = bad
	rc := &rawConn{t: t, c: conn}
	resp := rc.mustDo(req).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].ErrorCode != kerr.CorruptMessage.Code {
		t.Fatalf("response %+v, want CORRUPT_MESSAGE", resp.Topics)
	}
	if n := testutil.ToFloat64(m.crypt.sealFailures.WithLabelValues("corrupt_batch")); n != 1 {
		t.Fatalf("seal failures %v", n)
	}
	req = produceReq(7, -1, topicA)
	req.Topics[0].Partitions[0].Records = good
	resp = rc.mustDo(req).(*kmsg.ProduceResponse)
	if resp.Topics[0].Partitions[0].ErrorCode != 0 || resp.Topics[0].Partitions[0].BaseOffset != 0 {
		t.Fatalf("good batch after a corrupt one: %+v (the corrupt one must not be stored)", resp.Topics[0].Partitions[0])
	}
}

// encodedBatch is a one-record v2 batch as a producer writes it.
func encodedBatch(t *testing.T, value []byte) []byte {
	now := time.Now().UnixMilli()
	b := batch.Batch{Header: kmsg.RecordBatch{Magic: 2, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		FirstTimestamp: now, MaxTimestamp: now}, Records: []kmsg.Record{{Value: value}}}
	out, err := batch.NewCodec(0).Encode(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUntrustedFetchBytes: what a broker returns is untrusted. A batch
// with a bad CRC, and bytes that are no batch at all, reach the client
// untouched (it checks them itself) and are counted; a sealed record with
// a forged header goes on as stored. Nothing panics.
func TestUntrustedFetchBytes(t *testing.T) {
	c, sources, _ := startCryptCluster(t)
	sealed := encodedBatch(t, []byte("x"))
	badCRC := bytes.Clone(sealed)
	badCRC[len(badCRC)-1] ^= 1
	garbage := append(binary.BigEndian.AppendUint64(nil, 0), 0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8, 9) // negative length
	forged := func() []byte {
		now := time.Now().UnixMilli()
		b := batch.Batch{Header: kmsg.RecordBatch{Magic: 2, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
			FirstTimestamp: now, MaxTimestamp: now}, Records: []kmsg.Record{{Value: bytes.Repeat([]byte{7}, 40),
			Headers: []kmsg.Header{{Key: recordcrypt.HeaderKey, Value: []byte{1, 1, 9}}}}}}
		out, _ := batch.NewCodec(0).Encode(nil, &b)
		return out
	}()
	for _, tc := range []struct {
		name    string
		records []byte
		reason  string
	}{{"bad crc", badCRC, "corrupt_batch"}, {"garbage", garbage, "corrupt_batch"}, {"forged header", forged, "forged_header"}} {
		t.Run(tc.name, func(t *testing.T) {
			c.ControlKey(1, func(req kmsg.Request) (kmsg.Response, error, bool) {
				resp := req.(*kmsg.FetchRequest).ResponseKind().(*kmsg.FetchResponse)
				rt := kmsg.NewFetchResponseTopic()
				rt.Topic = topicA
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.HighWatermark, rp.LastStableOffset, rp.RecordBatches = 1, 1, tc.records
				rt.Partitions = append(rt.Partitions, rp)
				resp.Topics = append(resp.Topics, rt)
				return resp, nil, true
			})
			gw, m := startEncrypting(t, c, sources(idReader), kmstest.New(topicA), nil)
			conn, err := net.Dial("tcp", gw.BootstrapAddrs()[0])
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := kmsg.NewPtrFetchRequest()
			req.Version, req.MaxWaitMillis, req.MaxBytes = 11, 100, 1<<20
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = topicA
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes = 1 << 20
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp := (&rawConn{t: t, c: conn}).mustDo(req).(*kmsg.FetchResponse)
			if got := resp.Topics[0].Partitions[0].RecordBatches; !bytes.Equal(got, tc.records) {
				t.Fatalf("client got %x, want the broker's bytes %x untouched", got, tc.records)
			}
			if n := testutil.ToFloat64(m.crypt.undecryptable.WithLabelValues(tc.reason, actionQuarantined)) +
				testutil.ToFloat64(m.crypt.undecryptable.WithLabelValues(tc.reason, actionPassed)); n != 1 {
				t.Fatalf("undecryptable{%s} = %v, want 1", tc.reason, n)
			}
		})
	}
}

// TestEncryptKeyRings: two topics of one gateway use the two rings its
// key rings give them (one by its entry, one by the default key ring),
// and both come back as plaintext.
func TestEncryptKeyRings(t *testing.T) {
	c, sources, direct := startCryptCluster(t)
	kms := kmstest.New("ring-a", "ring-b")
	gw, _ := startEncrypting(t, c, sources(idPipeA), kms, func(ec *EncryptConfig) {
		ec.Topics = []string{"site-a.*", topicB}
		ec.KeyRings = map[string]string{"site-a.*": "ring-a"}
		ec.KeyRing = "ring-b"
	})
	want := map[string]string{topicA: "ring-a", topicB: "ring-b"}
	prod := plainClient(t, gw)
	for topic := range want {
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte("secret " + topic)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", topic, err)
		}
	}
	for _, r := range consumeN(t, direct(topicA, topicB), 2) {
		if len(r.Headers) != 1 || r.Headers[0].Key != recordcrypt.HeaderKey {
			t.Fatalf("stored record of %s is not sealed: %q", r.Topic, r.Value)
		}
		h, err := recordcrypt.ParseHeader(r.Headers[0].Value)
		if err != nil || h.Ring != want[r.Topic] {
			t.Fatalf("%s sealed under ring %q (%v), want %q", r.Topic, h.Ring, err, want[r.Topic])
		}
	}
	for _, r := range consumeN(t, plainClient(t, gw, kgo.ConsumeTopics(topicA, topicB), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), 2) {
		if string(r.Value) != "secret "+r.Topic {
			t.Fatalf("%s: %q", r.Topic, r.Value)
		}
	}
}

// TestEncryptConfigRings: key rings that name no entry of topics, or give
// overlapping entries different rings, are refused.
func TestEncryptConfigRings(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    EncryptConfig
		want string
	}{
		{"unknown entry", EncryptConfig{Topics: []string{"a"}, KeyRings: map[string]string{"b": "r"}}, `encrypt: key rings: "b" is not an entry of topics`},
		{"overlap", EncryptConfig{Topics: []string{"a.*", "a.b"}, KeyRings: map[string]string{"a.*": "r"}}, `encrypt: the topic entries "a.*" and "a.b" overlap but name different key rings`},
		{"overlap prefixes", EncryptConfig{Topics: []string{"a.*", "a.b.*"}, KeyRing: "r", KeyRings: map[string]string{"a.b.*": "s"}}, `"a.*" and "a.b.*" overlap`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.KMS, tc.c.Undecryptable = kmstest.New(), UndecryptablePass
			if err := tc.c.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	ok := EncryptConfig{Topics: []string{"a.*", "a.b"}, KeyRing: "r", KMS: kmstest.New(), Undecryptable: UndecryptablePass}
	if err := ok.validate(); err != nil {
		t.Fatalf("overlap with one ring: %v", err)
	}
}

// TestSealScratchAcrossRequests: many Produce requests on one connection,
// pipelined, each for 4 partitions, of records from 1 byte to about
// 70 KiB, through an encrypting gateway that seals and re-encodes them in
// buffers the connection reuses from one request to the next, then read
// back through it (Fetch responses of several partitions and batches,
// opened in buffers reused from one response to the next): every value
// reads back exact, in order per partition. A buffer reused while a
// request or response still referred to it, or one partition given
// another's bytes, would show as a wrong or repeated record.
func TestSealScratchAcrossRequests(t *testing.T) {
	const topic, partitions, n = "site-a.many", 4, 600
	c, sources, direct := startCryptCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(direct()).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	gw, _ := startEncrypting(t, c, sources(idPipeA), kmstest.New(topicA, topic), nil)
	prod := plainClient(t, gw, kgo.ProducerLinger(time.Millisecond), kgo.MaxProduceRequestsInflightPerBroker(5),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	want := map[int32][][]byte{}
	results := make(chan error, n)
	for i := range n {
		v := make([]byte, 1+(i*7919)%(70<<10))
		_, _ = rand.Read(v)
		p := int32(i % partitions)
		want[p] = append(want[p], v)
		prod.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: v}, func(_ *kgo.Record, err error) { results <- err })
	}
	for range n {
		if err := <-results; err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	cons := plainClient(t, gw, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	next := map[int32]int{}
	for got := 0; got < n; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", got, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			i := next[r.Partition]
			if i >= len(want[r.Partition]) || !bytes.Equal(r.Value, want[r.Partition][i]) {
				t.Fatalf("partition %d record %d (%d bytes) is not the value produced there", r.Partition, i, len(r.Value))
			}
			next[r.Partition]++
			got++
		})
	}
}

// TestSealManyRecordsPerBatch: batches of hundreds of small records (the
// gateway seals a batch a run of batch.EachRun records at a time, in one
// buffer, as it encodes it) are stored with no plaintext and read back
// through the gateway exact and in order.
func TestSealManyRecordsPerBatch(t *testing.T) {
	const n = 1000
	c, sources, direct := startCryptCluster(t)
	gw, _ := startEncrypting(t, c, sources(idPipeA), kmstest.New(topicA), nil)
	prod := plainClient(t, gw, kgo.ProducerLinger(50*time.Millisecond))
	want := make([]string, n)
	results := make(chan error, n)
	for i := range want {
		want[i] = fmt.Sprintf("secret-%04d-%s", i, bytes.Repeat([]byte{'a' + byte(i%26)}, 150))
		prod.Produce(context.Background(), &kgo.Record{Topic: topicA, Value: []byte(want[i])}, func(_ *kgo.Record, err error) { results <- err })
	}
	for range n {
		if err := <-results; err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	codecs, stored := fetchedCodecs(t, direct(), topicA)
	if len(stored) != n || len(stored)/len(codecs) <= batch.EachRun {
		t.Fatalf("stored %d records in %d batches: want %d, more than %d a batch on average", len(stored), len(codecs), n, batch.EachRun)
	}
	if strings.Contains(strings.Join(stored, ""), "secret") {
		t.Fatal("plaintext stored")
	}
	_, got := fetchedCodecs(t, plainClient(t, gw), topicA)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("fetched through the gateway: %d values, not the %d produced in order", len(got), n)
	}
}

// fetchedCodecs fetches partition 0 of topic from its start with cl (a
// raw Fetch request, as a broker answers it) and returns each batch's
// codec and its records' values.
func fetchedCodecs(t *testing.T, cl *kgo.Client, topic string) ([]batch.Compression, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxBytes, req.MinBytes = -1, 8<<20, 1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, mresp.Topics[0].TopicID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 8 << 20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch %s: %v", topic, err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch %s: %v", topic, kerr.ErrorForCode(p.ErrorCode))
	}
	bs, _, err := batch.NewCodec(0).Decode(p.RecordBatches)
	if err != nil {
		t.Fatalf("fetched batches of %s: %v", topic, err)
	}
	var codecs []batch.Compression
	var values []string
	for i := range bs {
		codecs = append(codecs, bs[i].Compression())
		for _, r := range bs[i].Records {
			values = append(values, string(r.Value))
		}
	}
	return codecs, values
}

// TestSealedCompression: a zstd batch produced through the gateway is
// stored uncompressed once sealed by default (ciphertext does not
// compress), with zstd under sealed_compression "producer"; either way
// the app fetching through the gateway gets the plaintext values in an
// uncompressed batch (it sits beside the gateway).
func TestSealedCompression(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		stored batch.Compression
	}{{"", batch.None}, {SealedAsProduced, batch.Zstd}} {
		t.Run(cmpOr(tc.mode, "default"), func(t *testing.T) {
			c, sources, direct := startCryptCluster(t)
			gw, _ := startEncrypting(t, c, sources(idPipeA), kmstest.New(topicA), func(ec *EncryptConfig) { ec.SealedCompression = tc.mode })
			prod := plainClient(t, gw, kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.ProducerLinger(50*time.Millisecond))
			var want []string
			var results []kgo.ProduceResult
			done := make(chan struct{})
			for i := range 20 {
				v := fmt.Sprintf("secret-%d-%s", i, bytes.Repeat([]byte("x"), 300))
				want = append(want, v)
				prod.Produce(context.Background(), &kgo.Record{Topic: topicA, Value: []byte(v)}, func(r *kgo.Record, err error) {
					results = append(results, kgo.ProduceResult{Record: r, Err: err})
					if len(results) == 20 {
						close(done)
					}
				})
			}
			<-done
			if err := kgo.ProduceResults(results).FirstErr(); err != nil {
				t.Fatal(err)
			}
			codecs, values := fetchedCodecs(t, direct(), topicA)
			for _, cd := range codecs {
				if cd != tc.stored {
					t.Fatalf("stored batches %v, want each %v", codecs, tc.stored)
				}
			}
			if plain := strings.Contains(strings.Join(values, ""), "secret"); len(values) != len(want) || plain {
				t.Fatalf("stored %d values (want %d), plaintext: %v", len(values), len(want), plain)
			}
			codecs, values = fetchedCodecs(t, plainClient(t, gw), topicA)
			for _, cd := range codecs {
				if cd != batch.None {
					t.Fatalf("batches fetched through the gateway %v, want uncompressed", codecs)
				}
			}
			if strings.Join(values, "|") != strings.Join(want, "|") {
				t.Fatalf("fetched through the gateway: %d values, want the %d produced", len(values), len(want))
			}
		})
	}
}
