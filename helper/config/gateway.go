package config

import (
	"fmt"
	"net"
	"strconv"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/edgeid/edgeid/helper/kafkagw"
	"github.com/edgeid/edgeid/helper/tunnel"
)

// kafkaGateways checks every kafka_gateway block; names must differ. The
// helper runs gateways in edge mode only: the app speaks plaintext to
// loopback and the gateway speaks mTLS upstream with the current SVID.
func (v *validator) kafkaGateways(f *fileBody, c *Config) []kafkagw.Config {
	var out []kafkagw.Config
	names := map[string]bool{}
	for _, b := range f.KafkaGateways {
		gc := v.kafkaGateway(b, c)
		if names[gc.Name] {
			v.errorf(b.def, "kafka_gateway %q: name used twice", gc.Name)
		}
		names[gc.Name] = true
		out = append(out, gc)
	}
	if len(out) > 0 && !c.DaemonMode {
		v.errorf(f.at("daemon_mode"), "kafka_gateway needs daemon mode: a gateway runs as long as the helper does")
	}
	return out
}

func (v *validator) kafkaGateway(b *gatewayBlock, c *Config) kafkagw.Config {
	gc := kafkagw.Config{
		Name:               b.Name,
		Mode:               kafkagw.ModeEdge,
		Upstreams:          b.Upstreams,
		ListenHost:         b.ListenHost,
		AdvertisedHost:     b.AdvertisedHost,
		PortMin:            int(b.PortMin),
		PortMax:            int(b.PortMax),
		TrustDomain:        b.TrustDomain,
		UpstreamIDs:        b.UpstreamSPIFFEIDs,
		AllowRemoteClients: b.AllowRemoteClients,
		MaxConnLifetime:    b.MaxConnLifetime,
		DialTimeout:        b.DialTimeout,
		IdleTimeout:        b.IdleTimeout,
	}
	where := fmt.Sprintf("kafka_gateway %q", b.Name)
	if len(gc.Upstreams) == 0 {
		v.errorf(b.def, "%s: \"upstreams\" is required (the brokers or cloud gateway, host:port)", where)
	}
	for _, u := range gc.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			v.errorf(b.at("upstreams"), "%s: \"upstreams\": %q must be host:port: %v", where, u, err)
		}
	}
	if gc.ListenHost == "" {
		gc.ListenHost = kafkagw.DefaultListenHost
	}
	if !gc.AllowRemoteClients {
		// The listener hands the helper's SVID to whoever connects.
		if tunnel.RequireLoopback(net.JoinHostPort(gc.ListenHost, "0")) != nil {
			v.errorf(b.at("listen_host"), "%s: \"listen_host\" %q is not a loopback address (127.0.0.0/8, ::1 or localhost); the gateway gives this workload's identity to whoever connects, so set \"allow_remote_clients\" = true to listen elsewhere", where, gc.ListenHost)
		}
	}
	gc.Encrypt = v.encrypt(b.Encrypt, where)
	gc.LocalUsers = v.localUsers(&b.spans, where, b.LocalUsers, b.AllowAnyLocalUser)
	v.gatewayPorts(b, where)
	if gc.TrustDomain == "" && c.SPIFFEID != "" {
		if id, err := spiffeid.FromString(c.SPIFFEID); err == nil {
			gc.TrustDomain = id.TrustDomain().Name()
		}
	}
	if gc.TrustDomain == "" {
		v.errorf(b.def, "%s: \"trust_domain\" is required when \"spiffe_id\" is not set", where)
	} else if _, err := spiffeid.TrustDomainFromString(gc.TrustDomain); err != nil {
		v.errorf(b.at("trust_domain"), "%s: \"trust_domain\": %v", where, err)
	}
	for _, id := range gc.UpstreamIDs {
		if err := ValidateIDPattern(id); err != nil {
			v.errorf(b.at("upstream_spiffe_ids"), "%s: \"upstream_spiffe_ids\": %v", where, err)
		}
	}
	return gc
}

// gatewayPorts checks port_min and port_max: both unset (ephemeral ports)
// or a range within 1-65535.
func (v *validator) gatewayPorts(b *gatewayBlock, where string) {
	lo, hi := b.PortMin, b.PortMax
	switch {
	case lo == 0 && hi == 0:
	case lo < 1 || hi > 65535 || lo > hi:
		v.errorf(b.at("port_min", "port_max"), "%s: port range %s-%s is not within 1-65535 with \"port_min\" <= \"port_max\"",
			where, strconv.FormatInt(lo, 10), strconv.FormatInt(hi, 10))
	}
}

// kafkaGatewayOf picks the gateway the Kafka client files point at: the one
// kafka.gateway names, or the only one there is.
func (v *validator) kafkaGatewayOf(b *kafkaBlock, k *Kafka, c *Config) {
	switch {
	case b.Gateway != "":
		found := false
		for _, g := range c.KafkaGateways {
			found = found || g.Name == b.Gateway
		}
		if !found {
			v.errorf(b.at("gateway"), "kafka: \"gateway\" %q names no kafka_gateway block", b.Gateway)
		}
		k.Gateway = b.Gateway
	case len(c.KafkaGateways) == 1:
		k.Gateway = c.KafkaGateways[0].Name
	case len(c.KafkaGateways) > 1:
		v.errorf(b.def, "kafka: there are %d kafka_gateway blocks; name the one the client files use with \"gateway\"", len(c.KafkaGateways))
	}
	if k.Gateway == "" {
		return
	}
	k.Plaintext = true
	for _, g := range c.KafkaGateways {
		k.SealingGateway = k.SealingGateway || (g.Name == k.Gateway && g.Encrypt != nil)
	}
	if k.BootstrapServers != "" {
		v.errorf(b.at("bootstrap_servers"), "kafka: \"bootstrap_servers\" is the local listener of kafka_gateway %q; set the brokers in its \"upstreams\" instead", k.Gateway)
	}
}
