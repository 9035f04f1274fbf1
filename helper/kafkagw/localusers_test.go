package kafkagw

import (
	"context"
	"crypto/tls"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgeid/edgeid/helper/internal/localpeer"
)

// TestEdgeModeCarriesOnlyItsLocalUsers: an edge gateway speaks upstream
// with the workload's SVID, so it carries an app's connection only if the
// kernel says the app's socket belongs to one of LocalUsers. This test's
// own produce is refused when only another uid is admitted, and goes
// through when its uid is.
func TestEdgeModeCarriesOnlyItsLocalUsers(t *testing.T) {
	ca := newCA(t)
	broker := svid(t, ca, "spiffe://"+td+"/cloud/kafka")
	btls := &tls.Config{ClientAuth: tls.RequireAnyClientCert, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		s, _ := broker.GetX509SVID()
		return &tls.Certificate{Certificate: [][]byte{s.Certificates[0].Raw}, PrivateKey: s.PrivateKey}, nil
	}}
	c, err := newTLSCluster(btls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	me := uint32(os.Getuid())
	for _, tc := range []struct {
		name    string
		uids    []uint32
		carried bool
	}{
		{"other account only", []uint32{me + 1}, false},
		{"own account", []uint32{me}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guard, err := localpeer.NewGuard(tc.uids)
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			m, err := NewMetrics(reg, 0)
			if err != nil {
				t.Fatal(err)
			}
			gw := runGateway(t, Config{Name: "edge", Mode: ModeEdge, Upstreams: c.ListenAddrs(), TrustDomain: td,
				LocalUsers: guard, Logger: testLogger(t), Metrics: m}, Sources{SVIDs: svid(t, ca, idPipeA), Bundles: ca.Bundle()})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cl, err := kgo.NewClient(kgo.SeedBrokers(gw.BootstrapAddrs()...), kgo.RequestRetries(0),
				kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(3*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			err = cl.ProduceSync(ctx, &kgo.Record{Topic: topicA, Value: []byte("x")}).FirstErr()
			if carried := err == nil; carried != tc.carried {
				t.Fatalf("uid %d with local users %v: produced %v (%v), want %v", me, tc.uids, carried, err, tc.carried)
			}
			if refused := testutil.ToFloat64(m.connections.WithLabelValues("refused_local_user")); (refused > 0) == tc.carried {
				t.Fatalf("connections counted as refused_local_user: %v", refused)
			}
			// The gateway times a request once its response is written: the
			// sample may land just after the client has the response.
			n := requestCount(t, reg, "Produce")
			for deadline := time.Now().Add(5 * time.Second); tc.carried && n == 0 && time.Now().Before(deadline); n = requestCount(t, reg, "Produce") {
				time.Sleep(10 * time.Millisecond)
			}
			if (n > 0) != tc.carried {
				t.Fatalf("request duration histogram has %d Produce samples (carried %v)", n, tc.carried)
			}
		})
	}
}

func TestLocalUsersOnlyInEdgeMode(t *testing.T) {
	guard, _ := localpeer.NewGuard([]uint32{0})
	cfg := Config{Name: "c", Mode: ModeCloud, Upstreams: []string{"127.0.0.1:1"}, TrustDomain: td,
		Policy: mustPolicy(t, ""), LocalUsers: guard}
	if _, err := cfg.withDefaults(); err == nil {
		t.Fatal("a cloud gateway accepted local users")
	}
}

// requestCount is the sample count of the request duration histogram for
// one API, as Prometheus would scrape it.
func requestCount(t *testing.T, reg *prometheus.Registry, api string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "edgeid_kafkagw_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "api" && l.GetValue() == api {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}
