// Package kafkademo is the demo Kafka broker of `edgeid up`: an in-memory
// Kafka (franz-go's kfake) that speaks TLS only, requires a client
// certificate that is an SVID of the trust domain, and presents its own
// SVID, rotated from the Workload API without a restart. A consumer in the
// same process reads every topic over mTLS and logs each message as a JSON
// line, which is how `edgeid up` sees edge messages arrive in the cloud.
package kafkademo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/edgeid/edgeid/internal/svidsource"
	"github.com/edgeid/edgeid/internal/tlspolicy"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures the demo broker.
type Config struct {
	// Listen is the address the broker binds, host:port.
	Listen string
	// Advertise is the host name the broker gives clients in Metadata
	// (with Listen's port), which its SVID carries as a DNS SAN so that
	// clients can verify the broker by name (librdkafka's
	// ssl.endpoint.identification.algorithm = https). Empty: Listen's
	// host, as bound.
	Advertise string
	// WorkloadAPI is the agent's Workload API address (unix://...).
	WorkloadAPI string
	// SPIFFEID is the broker's own ID, picked from the SVIDs offered.
	SPIFFEID string
	// TrustDomain is the domain whose members may connect.
	TrustDomain string
	// AllowedIDs, when set, are the only client IDs accepted.
	AllowedIDs []string
	// Topics are consumed from the start and logged to MessageLog.
	Topics []string
	// MessageLog receives one JSON line per consumed message.
	MessageLog string
	// Logger logs connections and errors; never keys.
	Logger *slog.Logger
}

// Message is one line of the message log.
type Message struct {
	Time  time.Time `json:"time"`
	Topic string    `json:"topic"`
	// Producer is the SPIFFE ID the producing workload put in the
	// message; the broker only admits authenticated clients, and logs
	// each client's verified ID as it connects.
	Producer string `json:"producer"`
	Value    string `json:"value"`
}

// Run serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return fmt.Errorf("kafkademo: %w", err)
	}
	self, err := spiffeid.FromString(cfg.SPIFFEID)
	if err != nil {
		return fmt.Errorf("kafkademo: %w", err)
	}
	source, err := svidsource.New(ctx, cfg.WorkloadAPI, self, 60*time.Second)
	if err != nil {
		return fmt.Errorf("kafkademo: %w", err)
	}
	defer source.Close()

	authorizer, err := clientAuthorizer(cfg, td, self, log)
	if err != nil {
		return err
	}
	serverTLS := tlsconfig.MTLSServerConfig(source, source, authorizer)
	serverTLS.MinVersion = tls.VersionTLS12
	serverTLS.CipherSuites = tlspolicy.CipherSuites

	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		// kfake binds 127.0.0.1 on a port it is given; bind the
		// configured address instead.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, cfg.Listen)
			if err != nil || cfg.Advertise == "" {
				return l, err
			}
			return advertised{Listener: l, host: cfg.Advertise}, nil
		}),
		kfake.TLS(serverTLS),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(1),
	)
	if err != nil {
		return fmt.Errorf("kafkademo: start broker on %s: %w", cfg.Listen, err)
	}
	defer cluster.Close()
	log.Info("Kafka demo broker listening", "addrs", cluster.ListenAddrs(), "spiffe_id", cfg.SPIFFEID)

	clientTLS := tlsconfig.MTLSClientConfig(source, source, tlsconfig.AuthorizeID(self))
	clientTLS.MinVersion = tls.VersionTLS12
	clientTLS.CipherSuites = tlspolicy.CipherSuites
	return consume(ctx, cluster.ListenAddrs(), clientTLS, cfg.Topics, cfg.MessageLog, log)
}

// clientAuthorizer admits the members of td, or only cfg.AllowedIDs (and
// the broker itself, whose consumer connects too) when set, and logs each
// client's SPIFFE ID the first time it connects.
func clientAuthorizer(cfg Config, td spiffeid.TrustDomain, self spiffeid.ID, log *slog.Logger) (tlsconfig.Authorizer, error) {
	authorizer := tlsconfig.AuthorizeMemberOf(td)
	if len(cfg.AllowedIDs) > 0 {
		var ids []spiffeid.ID
		for _, s := range cfg.AllowedIDs {
			id, err := spiffeid.FromString(s)
			if err != nil {
				return nil, fmt.Errorf("kafkademo: allowed ID: %w", err)
			}
			ids = append(ids, id)
		}
		ids = append(ids, self)
		authorizer = tlsconfig.AuthorizeOneOf(ids...)
	}
	var seenMu sync.Mutex
	seen := map[string]bool{}
	logged := func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		seenMu.Lock()
		first := !seen[id.String()]
		seen[id.String()] = true
		seenMu.Unlock()
		if first {
			log.Info("Client authenticated", "spiffe_id", id.String())
		}
		return nil
	}
	return chain(authorizer, logged), nil
}

func chain(a, b tlsconfig.Authorizer) tlsconfig.Authorizer {
	return func(id spiffeid.ID, chains [][]*x509.Certificate) error {
		if err := a(id, chains); err != nil {
			return err
		}
		return b(id, chains)
	}
}

// consume reads topics from the start and appends each message to the log.
func consume(ctx context.Context, brokers []string, tlsCfg *tls.Config, topics []string, logPath string, log *slog.Logger) error {
	if len(topics) == 0 {
		<-ctx.Done()
		return nil
	}
	client, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DialTLSConfig(tlsCfg),
		kgo.ConsumeTopics(topics...),
		kgo.AllowAutoTopicCreation(),
		kgo.MetadataMinAge(time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return fmt.Errorf("kafkademo: consumer: %w", err)
	}
	defer client.Close()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("kafkademo: %w", err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.Canceled) {
				log.Warn("Consume error", "topic", fe.Topic, "error", fe.Err)
			}
		}
		fetches.EachRecord(func(r *kgo.Record) {
			var payload struct {
				Producer string `json:"producer"`
			}
			_ = json.Unmarshal(r.Value, &payload)
			if err := enc.Encode(Message{Time: time.Now().UTC(), Topic: r.Topic, Producer: payload.Producer, Value: string(r.Value)}); err != nil {
				log.Error("Write message log", "error", err)
			}
		})
	}
}

// advertised is a listener that names its address by host: kfake
// advertises its listener's address to clients.
type advertised struct {
	net.Listener
	host string
}

func (l advertised) Addr() net.Addr {
	_, port, _ := net.SplitHostPort(l.Listener.Addr().String())
	return namedAddr(net.JoinHostPort(l.host, port))
}

// namedAddr is a TCP address given by host name.
type namedAddr string

func (a namedAddr) Network() string { return "tcp" }
func (a namedAddr) String() string  { return string(a) }
