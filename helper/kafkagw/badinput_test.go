package kafkagw

import (
	"context"
	"crypto/tls"
	"runtime"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestBadInputClosesOnlyThatConnection: each bad client is closed
// cleanly; a good connection opened before them keeps working; no
// goroutine is left behind.
func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	e := startCloud(t, testPolicy, func(c *Config) {
		c.MaxFrameBytes = 1 << 20
		c.FrameTimeout = 300 * time.Millisecond
	})
	good := e.raw(t, idPipeA)
	good.mustDo(kmsg.NewPtrApiVersionsRequest())
	base := runtime.NumGoroutine()
	apiVersions := kmsg.NewRequestFormatter().AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), 1)
	tests := []struct {
		name string
		send []byte
	}{
		{"oversize frame", be32(2 << 20)},
		{"negative size", be32(0xffffffff)},
		{"truncated header", frameOf([]byte{0, 18, 0})},
		{"unknown api key", frameOf([]byte{0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0xff, 0xff})},
		{"unsupported version", frameOf([]byte{0, 0, 0, 13, 0, 0, 0, 1, 0xff, 0xff})}, // Produce v13: topic ids
		{"uncovered api", frameOf([]byte{0, 32, 0, 1, 0, 0, 0, 1, 0xff, 0xff})},       // DescribeConfigs
		{"garbage body", frameOf([]byte{0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0x00, 0x05, 0xff})},
		{"slow loris", apiVersions[:7]}, // size and part of the header, then silence
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.raw(t, idPipeA)
			c.sendRaw(tt.send)
			if !c.closed(3 * time.Second) {
				t.Fatal("connection still open")
			}
		})
	}
	t.Run("other trust domain", func(t *testing.T) {
		other, err := svidtest.NewCA("other.org")
		if err != nil {
			t.Fatal(err)
		}
		cfg := clientTLS(t, other, "spiffe://other.org/edge/site-a/deepstream/cam")
		cfg.InsecureSkipVerify, cfg.VerifyPeerCertificate = true, nil
		c, err := tls.Dial("tcp", e.gw.BootstrapAddrs()[0], cfg)
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = c.Read(make([]byte, 1)) // TLS 1.3: the refusal arrives after the handshake
			_ = c.Close()
		}
		if err == nil {
			t.Fatal("a client of another trust domain was served")
		}
	})
	good.mustDo(kmsg.NewPtrApiVersionsRequest())
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines, %d before the bad clients:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

// TestEdgeModeRotatesUpstream: an app talks plaintext to an edge
// gateway; the broker requires mTLS and records each client certificate.
// The SVID rotates while one client connection produces: the broker sees
// the new certificate on new upstream connections, and no produce fails.
func TestEdgeModeRotatesUpstream(t *testing.T) {
	ca := newCA(t)
	brokerSrc := svid(t, ca, "spiffe://example.org/cloud/kafka")
	seen := make(chan string, 1000)
	btls := &tls.Config{ClientAuth: tls.RequireAnyClientCert, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		s, _ := brokerSrc.GetX509SVID()
		return &tls.Certificate{Certificate: [][]byte{s.Certificates[0].Raw}, PrivateKey: s.PrivateKey}, nil
	}, VerifyConnection: func(cs tls.ConnectionState) error {
		select {
		case seen <- cs.PeerCertificates[0].SerialNumber.String():
		default:
		}
		return nil
	}}
	c, err := newTLSCluster(btls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	app := svid(t, ca, idPipeA)
	gw, err := New(Config{Name: "edge", Mode: ModeEdge, Upstreams: c.ListenAddrs(), TrustDomain: td,
		MaxConnLifetime: 200 * time.Millisecond, Logger: testLogger(t)}, Sources{SVIDs: app, Bundles: ca.Bundle()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer gw.Wait()
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(gw.BootstrapAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequestRetries(0), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0), kgo.ConnIdleTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	serials := map[string]bool{}
	for i := range 40 {
		if i%10 == 5 {
			s, err := ca.SVID(idPipeA, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			app.Set(s)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topicA, Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	for len(seen) > 0 {
		serials[<-seen] = true
	}
	if len(serials) < 4 {
		t.Fatalf("broker saw %d client certificates, want the 4 SVIDs used", len(serials))
	}
}
