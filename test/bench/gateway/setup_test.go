package gatewaybench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw"
	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	td       = "example.org"
	idKafka  = "spiffe://example.org/cloud/kafka"
	idClient = "spiffe://example.org/edge/site-a/cam"
	idCloud  = "spiffe://example.org/cloud/kafka-gateway"
	idEdge   = "spiffe://example.org/edge/site-a/kafka-gateway"
	topic    = "site-a.detections"
)

const benchPolicy = `
allow "site-a-publish" {
  actors     = ["spiffe://example.org/edge/site-a/*"]
  resources  = ["topic:site-a.*"]
  operations = ["WRITE", "DESCRIBE"]
}
allow "site-a-idempotent" {
  # kgo's producer is idempotent: InitProducerID needs IDEMPOTENT_WRITE
  actors     = ["spiffe://example.org/edge/site-a/*"]
  resources  = ["cluster"]
  operations = ["IDEMPOTENT_WRITE"]
}
`

// paths are the ways a client reaches the broker; each has a client factory.
type paths struct {
	ca      *svidtest.CA
	tlsKF   *kfake.Cluster // mTLS broker: direct, relay, gateways
	plainKF *kfake.Cluster // plaintext broker: the no-TLS reference
	relay   string
	cloud   *kafkagw.Gateway
	local   *kafkagw.Gateway // cloud mode, plaintext to plainKF
	edge    *kafkagw.Gateway
}

func (p *paths) source(tb testing.TB, id string) *svidtest.Source {
	s, err := p.ca.SVID(id, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return svidtest.NewSource(s)
}

func setup(tb testing.TB, ctx context.Context) *paths {
	ca, err := svidtest.NewCA(td)
	if err != nil {
		tb.Fatal(err)
	}
	p := &paths{ca: ca}
	trust := spiffeid.RequireTrustDomainFromString(td)
	brokerTLS := tlsconfig.MTLSServerConfig(p.source(tb, idKafka), ca.Bundle(), tlsconfig.AuthorizeMemberOf(trust))
	if p.tlsKF, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(brokerTLS), kfake.SeedTopics(1, topic), kfake.BlackholeProduce()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.tlsKF.Close)
	if p.plainKF, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic), kfake.BlackholeProduce()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.plainKF.Close)
	p.relay = startRelay(tb, ctx, p.tlsKF.ListenAddrs()[0])
	pol, err := policy.Parse([]byte(benchPolicy), "bench.hcl")
	if err != nil {
		tb.Fatal(err)
	}
	p.cloud = p.gateway(tb, ctx, kafkagw.Config{Name: "cloud", Mode: kafkagw.ModeCloud, UpstreamTLS: true, UpstreamIDs: []string{idKafka}, Policy: pol}, idCloud)
	p.local = p.gateway(tb, ctx, kafkagw.Config{Name: "cloud-local", Mode: kafkagw.ModeCloud, Policy: pol, Upstreams: p.plainKF.ListenAddrs()}, idCloud)
	p.edge = p.gateway(tb, ctx, kafkagw.Config{Name: "edge", Mode: kafkagw.ModeEdge, UpstreamIDs: []string{idKafka}}, idEdge)
	return p
}

func (p *paths) gateway(tb testing.TB, ctx context.Context, cfg kafkagw.Config, id string) *kafkagw.Gateway {
	m, err := kafkagw.NewMetrics(prometheus.NewRegistry(), 10)
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Upstreams == nil {
		cfg.Upstreams = p.tlsKF.ListenAddrs()
	}
	cfg.TrustDomain, cfg.Metrics = td, m
	cfg.DenialLogInterval = time.Hour
	gw, err := kafkagw.New(cfg, kafkagw.Sources{SVIDs: p.source(tb, id), Bundles: p.ca.Bundle()})
	if err != nil {
		tb.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	return gw
}

func (p *paths) clientTLS(tb testing.TB) *tls.Config {
	return mtlsClient(p.ca, p.source(tb, idClient))
}

// mtlsClient is a client's SPIFFE mTLS config with src's SVID, trusting
// ca for any server of the trust domain.
func mtlsClient(ca *svidtest.CA, src x509svid.Source) *tls.Config {
	return tlsconfig.MTLSClientConfig(src, ca.Bundle(), tlsconfig.AuthorizeMemberOf(spiffeid.RequireTrustDomainFromString(td)))
}

// client opens a kgo client for path name, with extra options.
func (p *paths) client(tb testing.TB, name string, extra ...kgo.Opt) *kgo.Client {
	var opts []kgo.Opt
	switch name {
	case "direct plaintext":
		opts = []kgo.Opt{kgo.SeedBrokers(p.plainKF.ListenAddrs()...)}
	case "direct mTLS":
		opts = []kgo.Opt{kgo.SeedBrokers(p.tlsKF.ListenAddrs()...), kgo.DialTLSConfig(p.clientTLS(tb))}
	case "TCP relay (mTLS)":
		// Every broker address, bootstrap or advertised, is dialed through
		// the relay; TLS stays end to end.
		cfg := p.clientTLS(tb)
		opts = []kgo.Opt{kgo.SeedBrokers(p.tlsKF.ListenAddrs()...), kgo.Dialer(func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.relay)
			if err != nil {
				return nil, err
			}
			return tls.Client(c, cfg), nil
		})}
	case "cloud gateway":
		opts = []kgo.Opt{kgo.SeedBrokers(p.cloud.BootstrapAddrs()...), kgo.DialTLSConfig(p.clientTLS(tb))}
	case cloudLocalPath:
		opts = []kgo.Opt{kgo.SeedBrokers(p.local.BootstrapAddrs()...), kgo.DialTLSConfig(p.clientTLS(tb))}
	case "edge gateway":
		opts = []kgo.Opt{kgo.SeedBrokers(p.edge.BootstrapAddrs()...)}
	default:
		tb.Fatalf("unknown path %q", name)
	}
	// No compression: every path carries the same bytes on the wire.
	opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return cl
}

// startRelay is a bare TCP relay to target: the cost of one extra hop.
func startRelay(tb testing.TB, ctx context.Context, target string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				relayConn(ctx, c, target)
			}()
		}
	}()
	return ln.Addr().String()
}

func relayConn(ctx context.Context, c net.Conn, target string) {
	defer c.Close()
	u, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}
	go pipe(u, c)
	go pipe(c, u)
	select {
	case <-done:
		<-done
	case <-ctx.Done():
	}
}

// warm produces once so that metadata, connections and handshakes are
// out of the measurement.
func warm(ctx context.Context, cl *kgo.Client) error {
	for i := 0; i < 20; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("warm")}).FirstErr(); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	return nil
}

var errTimeBound = errors.New("time bound reached")

func pad(s string, n int) string { return s + strings.Repeat(" ", max(n-len(s), 0)) }
