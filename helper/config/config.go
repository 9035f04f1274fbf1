package config

import (
	"io/fs"
	"time"

	"github.com/edgeid/edgeid/helper/kafkaconf"
	"github.com/edgeid/edgeid/helper/kafkagw"
	"github.com/edgeid/edgeid/helper/tunnel"
)

// Defaults shared with spiffe-helper v0.11.
const (
	DefaultAgentAddress      = "/tmp/spire-agent/public/api.sock"
	DefaultCertFileMode      = fs.FileMode(0o644)
	DefaultKeyFileMode       = fs.FileMode(0o600)
	DefaultJWTBundleFileMode = fs.FileMode(0o600)
	DefaultJWTSVIDFileMode   = fs.FileMode(0o600)
	DefaultBindPort          = 8081
	DefaultLivenessPath      = "/live"
	DefaultReadinessPath     = "/ready"
)

// Defaults of edgeid's own settings.
const (
	// DefaultBindAddress keeps health and metrics on loopback (spiffe-helper
	// binds every interface).
	DefaultBindAddress        = "127.0.0.1"
	DefaultStopTimeout        = 10 * time.Second
	DefaultRestartBackoffMin  = time.Second
	DefaultRestartBackoffMax  = 30 * time.Second
	DefaultWorkloadAPITimeout = 30 * time.Second
	DefaultDialTimeout        = 5 * time.Second
	DefaultLibrdkafkaFileName = "kafka.properties"
	DefaultDeepStreamFileName = "cfg_kafka.txt"
	DefaultJavaFileName       = "client.properties"
)

// On-rotate actions for the managed process.
const (
	OnRotateSignal  = "signal"
	OnRotateRestart = "restart"
)

// Config is a validated helper configuration with defaults applied.
type Config struct {
	// AgentAddress is the Workload API address: a socket path as in
	// spiffe-helper, or a unix:// or tcp:// URL.
	AgentAddress string

	// Cmd is the program to run; CmdArgs its arguments, split the way
	// spiffe-helper splits cmd_args.
	Cmd     string
	CmdArgs []string
	// PIDFileName names a file holding the PID of a process to signal
	// with RenewSignal after every rotation.
	PIDFileName string
	// RenewSignal is the signal name ("SIGUSR1"), or "".
	RenewSignal string
	// OnRotate is OnRotateSignal or OnRotateRestart.
	OnRotate string
	// StopTimeout bounds the wait after SIGTERM before SIGKILL.
	StopTimeout time.Duration
	// RestartOnExit restarts Cmd when it exits on its own.
	RestartOnExit     bool
	RestartBackoffMin time.Duration
	RestartBackoffMax time.Duration
	// HoldUntilSVID starts Cmd held at exec and releases it once the first
	// SVID is on disk.
	HoldUntilSVID bool

	// DaemonMode false fetches once, writes, and exits.
	DaemonMode bool
	// WorkloadAPITimeout bounds the wait for the first SVID in one-shot
	// mode and for the first update before readiness is reported lost.
	WorkloadAPITimeout time.Duration

	// Hint and SPIFFEID select one SVID when the workload gets several.
	Hint     string
	SPIFFEID string

	CertDir                  string
	SVIDFileName             string
	SVIDKeyFileName          string
	SVIDBundleFileName       string
	CombinedPEMFileName      string
	AddIntermediatesToBundle bool
	IncludeFederatedDomains  bool
	OmitExpired              bool
	CertFileMode             fs.FileMode
	KeyFileMode              fs.FileMode

	JWTSVIDs          []JWTSVID
	JWTBundleFileName string
	JWTBundleFileMode fs.FileMode
	JWTSVIDFileMode   fs.FileMode

	PKCS12 *PKCS12
	Kafka  *Kafka

	// Tunnels are tunnel's own configs; the daemon adds the logger and
	// metrics.
	Tunnels []tunnel.Config
	// KafkaGateways are edge-mode Kafka gateways (kafkagw's own configs);
	// the daemon adds the logger and metrics.
	KafkaGateways []kafkagw.Config

	HealthChecks HealthChecks

	LogLevel string
	// LogFormat is "text" (default) or "json".
	LogFormat string
}

// JWTSVID is one entry of jwt_svids.
type JWTSVID struct {
	Audience       string
	ExtraAudiences []string
	FileName       string
}

// HealthChecks is the health_checks block: spiffe-helper's keys plus
// bind_address. The same listener serves /healthz, /readyz and /metrics.
type HealthChecks struct {
	ListenerEnabled bool
	// BindAddress defaults to 127.0.0.1 (DefaultBindAddress).
	BindAddress   string
	BindPort      int
	LivenessPath  string
	ReadinessPath string
}

// PKCS12 is the pkcs12 block.
type PKCS12 struct {
	KeystoreFileName   string
	TruststoreFileName string
	// PasswordFile or PasswordEnv supply the store password; with neither
	// the password is empty.
	PasswordFile string
	PasswordEnv  string
	// Legacy selects the SHA-1/3DES encryption older Java and OpenSSL
	// readers need instead of PBES2/AES-256.
	Legacy bool
}

// Kafka is the kafka block: which client configs to render and how, in
// kafkaconf's own types. Settings.EndpointIdentificationAlgorithm is
// "https" (verify the broker's host name; the default, as in librdkafka
// >= 2.0) or "none"; Settings.Extra is unused (each Output has its own).
// Each Output is a file name (empty: not rendered), a user template and
// the extra properties.
type Kafka struct {
	kafkaconf.Settings

	Librdkafka kafkaconf.Output
	DeepStream kafkaconf.Output
	Java       kafkaconf.Output

	DeepStreamPartitionKey string
	JavaKeystoreType       string
	// Gateway names the kafka_gateway whose local listener the files
	// point at (Settings.Plaintext is then true and BootstrapServers is
	// filled in by the daemon once the gateway listens); "" for none.
	Gateway string
}

// X509Enabled reports whether the three X.509 file names are set.
func (c *Config) X509Enabled() bool {
	return c.SVIDFileName != "" && c.SVIDKeyFileName != "" && c.SVIDBundleFileName != ""
}
