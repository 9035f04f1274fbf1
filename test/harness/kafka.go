package harness

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// StartKafka3 runs a 3-broker kfake cluster on loopback until the test
// ends, serving TLS with server, with topic's partitions led by all three
// brokers (partition p by the (p mod 3)-th broker Metadata lists).
// onProduce, when not nil, sees every Produce request before the brokers
// handle it. client is the TLS configuration of the one client that reads
// Metadata to place the leaders.
func StartKafka3(t testing.TB, server, client *tls.Config, topic string, partitions int32, onProduce func(*kmsg.ProduceRequest)) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.TLS(server), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatalf("harness: kfake: %v", err)
	}
	t.Cleanup(c.Close)
	if onProduce != nil {
		c.ControlKey(0, func(req kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			onProduce(req.(*kmsg.ProduceRequest))
			return nil, nil, false
		})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DialTLSConfig(client))
	if err != nil {
		t.Fatalf("harness: kfake client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil || len(resp.Brokers) != 3 {
		t.Fatalf("harness: kfake metadata: %v (%d brokers)", err, len(resp.Brokers))
	}
	for p := range partitions {
		if err := c.MoveTopicPartition(topic, p, resp.Brokers[p%3].NodeID); err != nil {
			t.Fatalf("harness: kfake partition %d: %v", p, err)
		}
	}
	return c
}
