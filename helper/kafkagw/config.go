package kafkagw

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/edgeid/edgeid/helper/internal/localpeer"
	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/helper/tunnel"
)

// Modes.
const (
	// ModeCloud terminates SPIFFE mTLS from clients and authorizes every
	// request by the client's SPIFFE ID.
	ModeCloud = "cloud"
	// ModeEdge takes plaintext from a local app and speaks mTLS upstream
	// with the current SVID.
	ModeEdge = "edge"
)

// Defaults applied to zero Config fields.
const (
	DefaultListenHost        = "127.0.0.1"
	DefaultMaxFrameBytes     = 100 << 20 // Kafka's socket.request.max.bytes
	DefaultIdleTimeout       = 10 * time.Minute
	DefaultFrameTimeout      = 30 * time.Second
	DefaultUpstreamTimeout   = 6 * time.Minute
	DefaultDialTimeout       = 10 * time.Second
	DefaultMaxInFlight       = 256
	DefaultDenialLogInterval = time.Minute
	DefaultMaxActorLabels    = 100
	handshakeTimeout         = 10 * time.Second
	writeTimeout             = 30 * time.Second
)

// Config configures a gateway. See README.md for each key.
type Config struct {
	Name string
	Mode string
	// Upstreams are the bootstrap brokers (host:port). Each gets a
	// listener; brokers found in Metadata get theirs on first sight.
	Upstreams []string
	// ListenHost is the host listeners bind (127.0.0.1 by default).
	ListenHost string
	// AdvertisedHost is the host written into rewritten responses
	// (ListenHost by default). In cloud mode it must be a name the
	// gateway's SVID carries when clients verify host names.
	AdvertisedHost string
	// PortMin and PortMax bound the listener ports; both 0 picks
	// ephemeral ports.
	PortMin, PortMax int
	// AllowRemoteClients lets an edge gateway listen on a non-loopback
	// host; it hands its SVID to anyone who connects.
	AllowRemoteClients bool
	// LocalUsers, in edge mode, admits only connections whose socket
	// belongs to one of its local accounts (the workload's own, by
	// default). A nil guard admits any local account.
	LocalUsers *localpeer.Guard
	// UpstreamTLS makes a cloud gateway dial brokers with mTLS and its
	// own SVID; otherwise it dials plaintext, to loopback only. An edge
	// gateway always dials with mTLS.
	UpstreamTLS bool
	// UpstreamIDs, when set, are the SPIFFE IDs brokers may present;
	// otherwise any ID of TrustDomain.
	UpstreamIDs []string
	// TrustDomain is the domain whose clients (cloud) and brokers are
	// accepted.
	TrustDomain string
	// Policy authorizes cloud-mode requests; required in cloud mode.
	Policy *policy.Set
	// PolicyFile, when set, is what Reload reads.
	PolicyFile string

	MaxFrameBytes     int32
	IdleTimeout       time.Duration
	FrameTimeout      time.Duration
	UpstreamTimeout   time.Duration
	DialTimeout       time.Duration
	MaxInFlight       int
	MaxConnLifetime   time.Duration
	DenialLogInterval time.Duration

	// Encrypt, in edge mode, seals record values of the topics it names
	// on Produce and opens them on Fetch; nil turns the filter off.
	Encrypt *EncryptConfig

	Logger  *slog.Logger
	Metrics *Metrics
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Mode != ModeCloud && cfg.Mode != ModeEdge {
		return cfg, fmt.Errorf("kafkagw %s: mode %q is not %q or %q", cfg.Name, cfg.Mode, ModeCloud, ModeEdge)
	}
	if len(cfg.Upstreams) == 0 {
		return cfg, fmt.Errorf("kafkagw %s: no upstream brokers", cfg.Name)
	}
	for _, u := range cfg.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return cfg, fmt.Errorf("kafkagw %s: upstream %q: %w", cfg.Name, u, err)
		}
	}
	if cfg.ListenHost == "" {
		cfg.ListenHost = DefaultListenHost
	}
	if cfg.AdvertisedHost == "" {
		cfg.AdvertisedHost = cfg.ListenHost
	}
	if cfg.Mode == ModeEdge && !cfg.AllowRemoteClients {
		if err := tunnel.RequireLoopback(net.JoinHostPort(cfg.ListenHost, "0")); err != nil {
			return cfg, fmt.Errorf("kafkagw %s: listen_host %q is not loopback: an edge gateway lends its SVID to anyone who connects; set allow_remote_clients = true to listen elsewhere", cfg.Name, cfg.ListenHost)
		}
	}
	if cfg.Mode == ModeCloud && cfg.LocalUsers != nil {
		return cfg, fmt.Errorf("kafkagw %s: local users apply to edge mode only (cloud clients present SVIDs)", cfg.Name)
	}
	if cfg.Mode == ModeCloud && !cfg.UpstreamTLS {
		for _, u := range cfg.Upstreams {
			if err := tunnel.RequireLoopback(u); err != nil {
				return cfg, fmt.Errorf("kafkagw %s: upstream %q: plaintext to the brokers is for a gateway beside them, on loopback; set upstream_tls to dial them with mTLS", cfg.Name, u)
			}
		}
		if len(cfg.UpstreamIDs) > 0 {
			return cfg, fmt.Errorf("kafkagw %s: upstream IDs %v would not be checked: a plaintext upstream presents no SVID; set upstream_tls to dial the brokers with mTLS", cfg.Name, cfg.UpstreamIDs)
		}
	}
	if cfg.Mode == ModeCloud && cfg.Policy == nil {
		return cfg, fmt.Errorf("kafkagw %s: cloud mode needs a policy", cfg.Name)
	}
	if cfg.Mode == ModeCloud && cfg.Encrypt != nil {
		return cfg, fmt.Errorf("kafkagw %s: record encryption runs in edge mode only (beside the app that owns the identity)", cfg.Name)
	}
	if cfg.TrustDomain == "" {
		return cfg, fmt.Errorf("kafkagw %s: trust_domain is empty", cfg.Name)
	}
	if cfg.PortMin < 0 || cfg.PortMax > 65535 || cfg.PortMin > cfg.PortMax || (cfg.PortMin == 0) != (cfg.PortMax == 0) {
		return cfg, fmt.Errorf("kafkagw %s: port range %d-%d is invalid", cfg.Name, cfg.PortMin, cfg.PortMax)
	}
	setDefault(&cfg.MaxFrameBytes, DefaultMaxFrameBytes)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.FrameTimeout, DefaultFrameTimeout)
	setDefault(&cfg.UpstreamTimeout, DefaultUpstreamTimeout)
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.MaxInFlight, DefaultMaxInFlight)
	setDefault(&cfg.DenialLogInterval, DefaultDenialLogInterval)
	if cfg.MaxConnLifetime < 0 {
		return cfg, errors.New("kafkagw: max_conn_lifetime is negative")
	}
	return cfg, nil
}

func setDefault[T int | int32 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
