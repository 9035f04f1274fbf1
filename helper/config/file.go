package config

import (
	"io/fs"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/edgeid/edgeid/helper/kafkaconf"
)

// The structs in this file are the file as written, before validation: one
// struct per block, and each key declared once, by its hcl tag. decode.go
// fills them and records where each key was written; the validator methods
// in validate.go check them and apply defaults. A pointer field tells an
// unset key from a zero value where the default is not the zero value.
//
// Tags: `hcl:"name"` is a key = value; `hcl:"name,block"` a block, which
// `object` also accepts as HCL 1's name = { ... }; `hcl:",label"` holds a
// block's label. A slice of struct pointers without `block` is a list of
// objects (jwt_svids = [{ ... }, ...]).

// fileBody is the top level of the file.
type fileBody struct {
	spans

	// spiffe-helper v0.11
	AgentAddress             string       `hcl:"agent_address"`
	Cmd                      string       `hcl:"cmd"`
	CmdArgs                  string       `hcl:"cmd_args"`
	PIDFileName              string       `hcl:"pid_file_name"`
	CertDir                  string       `hcl:"cert_dir"`
	CertFileMode             fs.FileMode  `hcl:"cert_file_mode"`
	KeyFileMode              fs.FileMode  `hcl:"key_file_mode"`
	JWTBundleFileMode        fs.FileMode  `hcl:"jwt_bundle_file_mode"`
	JWTSVIDFileMode          fs.FileMode  `hcl:"jwt_svid_file_mode"`
	IncludeFederatedDomains  bool         `hcl:"include_federated_domains"`
	OmitExpired              bool         `hcl:"omit_expired"`
	RenewSignal              string       `hcl:"renew_signal"`
	DaemonMode               *bool        `hcl:"daemon_mode"`
	Hint                     string       `hcl:"hint"`
	SVIDFileName             string       `hcl:"svid_file_name"`
	SVIDKeyFileName          string       `hcl:"svid_key_file_name"`
	SVIDBundleFileName       string       `hcl:"svid_bundle_file_name"`
	JWTBundleFileName        string       `hcl:"jwt_bundle_file_name"`
	AddIntermediatesToBundle bool         `hcl:"add_intermediates_to_bundle"`
	JWTSVIDs                 []*jwtEntry  `hcl:"jwt_svids"`
	HealthChecks             *healthBlock `hcl:"health_checks,block,object"`

	// edgeid
	SPIFFEID            string          `hcl:"spiffe_id"`
	OnRotate            string          `hcl:"on_rotate"`
	StopTimeout         *time.Duration  `hcl:"stop_timeout"`
	RestartOnExit       *bool           `hcl:"restart_on_exit"`
	RestartBackoffMin   *time.Duration  `hcl:"restart_backoff_min"`
	RestartBackoffMax   *time.Duration  `hcl:"restart_backoff_max"`
	HoldUntilSVID       bool            `hcl:"hold_until_svid"`
	WorkloadAPITimeout  *time.Duration  `hcl:"workload_api_timeout"`
	CombinedPEMFileName string          `hcl:"combined_pem_file_name"`
	LogLevel            string          `hcl:"log_level"`
	LogFormat           string          `hcl:"log_format"`
	PKCS12              *pkcs12Block    `hcl:"pkcs12,block,object"`
	Kafka               *kafkaBlock     `hcl:"kafka,block"`
	Tunnels             []*tunnelBlock  `hcl:"tunnel,block"`
	KafkaGateways       []*gatewayBlock `hcl:"kafka_gateway,block"`
}

// jwtEntry is one object of jwt_svids.
type jwtEntry struct {
	spans
	Audience       string   `hcl:"jwt_audience"`
	ExtraAudiences []string `hcl:"jwt_extra_audiences"`
	FileName       string   `hcl:"jwt_svid_file_name"`
}

// healthBlock is health_checks.
type healthBlock struct {
	spans
	ListenerEnabled bool   `hcl:"listener_enabled"`
	BindAddress     string `hcl:"bind_address"`
	BindPort        int64  `hcl:"bind_port"`
	LivenessPath    string `hcl:"liveness_path"`
	ReadinessPath   string `hcl:"readiness_path"`
}

// pkcs12Block is pkcs12.
type pkcs12Block struct {
	spans
	KeystoreFileName   string `hcl:"keystore_file_name"`
	TruststoreFileName string `hcl:"truststore_file_name"`
	PasswordFile       string `hcl:"password_file"`
	PasswordEnv        string `hcl:"password_env"`
	Legacy             bool   `hcl:"legacy"`
}

// kafkaBlock is kafka.
type kafkaBlock struct {
	spans
	BootstrapServers                string               `hcl:"bootstrap_servers"`
	EndpointIdentificationAlgorithm string               `hcl:"endpoint_identification_algorithm"`
	CipherSuites                    string               `hcl:"cipher_suites"`
	LibrdkafkaFileName              string               `hcl:"librdkafka_file_name"`
	LibrdkafkaTemplate              string               `hcl:"librdkafka_template"`
	LibrdkafkaProperties            []kafkaconf.Property `hcl:"librdkafka_properties"`
	DeepStreamFileName              string               `hcl:"deepstream_file_name"`
	DeepStreamTemplate              string               `hcl:"deepstream_template"`
	DeepStreamProperties            []kafkaconf.Property `hcl:"deepstream_properties"`
	DeepStreamPartitionKey          string               `hcl:"deepstream_partition_key"`
	JavaFileName                    string               `hcl:"java_file_name"`
	JavaTemplate                    string               `hcl:"java_template"`
	JavaProperties                  []kafkaconf.Property `hcl:"java_properties"`
	JavaKeystoreType                string               `hcl:"java_keystore_type"`
	Gateway                         string               `hcl:"gateway"`
}

// tunnelBlock is one tunnel "name" block.
type tunnelBlock struct {
	spans
	Name               string        `hcl:",label"`
	Mode               string        `hcl:"mode"`
	Listen             string        `hcl:"listen"`
	Target             string        `hcl:"target"`
	AllowedSPIFFEIDs   []string      `hcl:"allowed_spiffe_ids"`
	AllowRemoteClients bool          `hcl:"allow_remote_clients"`
	LocalUsers         []string      `hcl:"local_users"`
	AllowAnyLocalUser  bool          `hcl:"allow_any_local_user"`
	MaxConnLifetime    time.Duration `hcl:"max_conn_lifetime"`
	DialTimeout        time.Duration `hcl:"dial_timeout"`
}

// gatewayBlock is one kafka_gateway "name" block: an edge-mode Kafka
// gateway (helper/kafkagw) run by the helper.
type gatewayBlock struct {
	spans
	Name               string        `hcl:",label"`
	Upstreams          []string      `hcl:"upstreams"`
	ListenHost         string        `hcl:"listen_host"`
	AdvertisedHost     string        `hcl:"advertised_host"`
	PortMin            int64         `hcl:"port_min"`
	PortMax            int64         `hcl:"port_max"`
	TrustDomain        string        `hcl:"trust_domain"`
	UpstreamSPIFFEIDs  []string      `hcl:"upstream_spiffe_ids"`
	AllowRemoteClients bool          `hcl:"allow_remote_clients"`
	LocalUsers         []string      `hcl:"local_users"`
	AllowAnyLocalUser  bool          `hcl:"allow_any_local_user"`
	MaxConnLifetime    time.Duration `hcl:"max_conn_lifetime"`
	DialTimeout        time.Duration `hcl:"dial_timeout"`
	IdleTimeout        time.Duration `hcl:"idle_timeout"`
	Encrypt            *encryptBlock `hcl:"encrypt,block"`
}

// spans records where a block and each of its keys were written.
type spans struct {
	// def is the block's own range: its type (or the name of a
	// name = { ... } attribute), an object's braces, or the file.
	def  hcl.Range
	keys map[string]hcl.Range
}

func (s *spans) spanned() *spans { return s }

// set records that key was decoded from text at rng.
func (s *spans) set(key string, rng hcl.Range) {
	if s.keys == nil {
		s.keys = map[string]hcl.Range{}
	}
	s.keys[key] = rng
}

// has reports whether key was decoded.
func (s *spans) has(key string) bool {
	_, ok := s.keys[key]
	return ok
}

// at is where the first of keys that was written is, or the block's
// range when none was.
func (s *spans) at(keys ...string) hcl.Range {
	for _, key := range keys {
		if r, ok := s.keys[key]; ok {
			return r
		}
	}
	return s.def
}
