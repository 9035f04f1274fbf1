package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgeid/edgeid/helper/internal/testpki"
	"github.com/edgeid/edgeid/internal/fakewlapi"
)

// TestDaemonKafkaGatewayFollowsRotation: with a kafka_gateway block the
// rendered librdkafka file names the gateway's plaintext loopback listener
// and no key; a client that produces through it reaches an mTLS broker, and
// after a rotation the broker sees the new SVID on the gateway's new
// upstream connections while the client keeps its own.
func TestDaemonKafkaGatewayFollowsRotation(t *testing.T) {
	api := fakewlapi.Start(t)
	ca := testpki.NewCA(t, "example.org", false)
	brokerSVID := ca.SVID(t, "spiffe://example.org/cloud/kafka", time.Hour)
	var mu sync.Mutex
	var seen []string // client certificate serials, in handshake order
	serverTLS := tlsconfig.MTLSServerConfig(brokerSVID, x509bundle.NewSet(ca.Bundle()), tlsconfig.AuthorizeAny())
	serverTLS.VerifyConnection = func(cs tls.ConnectionState) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, cs.PeerCertificates[0].SerialNumber.String())
		return nil
	}
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(serverTLS), kfake.SeedTopics(1, "site-a.detections"))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()

	dir := t.TempDir()
	c := parse(t, `
agent_address = "`+api.Addr+`"
spiffe_id = "spiffe://example.org/edge/site-a/cam"
cert_dir = "`+dir+`"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "bundle.pem"
kafka {
  librdkafka_file_name = "kafka.properties"
}
kafka_gateway "uplink" {
  upstreams = ["`+broker.ListenAddrs()[0]+`"]
  upstream_spiffe_ids = ["spiffe://example.org/cloud/kafka"]
  max_conn_lifetime = "200ms"
}
`)
	d := runDaemon(t, c, nil)
	first := ca.SVID(t, "spiffe://example.org/edge/site-a/cam", time.Hour)
	api.Push([]*x509svid.SVID{first}, ca.Bundle())
	eventually(t, "ready", d.Ready)
	addrs := d.GatewayAddrs("uplink")
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "127.0.0.1:") {
		t.Fatalf("gateway addresses %v", addrs)
	}
	props := string(mustRead(t, dir+"/kafka.properties"))
	for _, want := range []string{"bootstrap.servers=" + addrs[0] + "\n", "security.protocol=plaintext\n"} {
		if !strings.Contains(props, want) {
			t.Fatalf("kafka.properties lacks %q:\n%s", want, props)
		}
	}
	if strings.Contains(props, "ssl.") {
		t.Fatalf("kafka.properties names TLS settings although the gateway holds the SVID:\n%s", props)
	}

	client, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	produce := func(v string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return client.ProduceSync(ctx, &kgo.Record{Topic: "site-a.detections", Value: []byte(v)}).FirstErr()
	}
	if err := produce("one"); err != nil {
		t.Fatalf("produce through the gateway: %v", err)
	}
	serial := func(s *x509svid.SVID) string { return s.Certificates[0].SerialNumber.String() }
	has := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range seen {
			if s == want {
				return true
			}
		}
		return false
	}
	if !has(serial(first)) {
		t.Fatalf("the broker never saw the first SVID (%v)", seen)
	}
	second := ca.SVID(t, "spiffe://example.org/edge/site-a/cam", time.Hour)
	api.Push([]*x509svid.SVID{second}, ca.Bundle())
	eventually(t, "the broker sees the new SVID through the same client", func() error {
		if err := produce("two"); err != nil {
			return err
		}
		if !has(serial(second)) {
			return fmt.Errorf("broker has seen %v, not yet %s", seen, serial(second))
		}
		return nil
	})
}
