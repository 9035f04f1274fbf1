package config

import (
	"encoding/csv"
	"fmt"
	"io/fs"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sys/unix"
)

// validator turns the decoded file into a Config: one method per block,
// each applying its defaults and reporting every problem at the key that
// causes it.
type validator struct {
	report
	getenv func(string) string
}

func (v *validator) config(f *fileBody) *Config {
	c := &Config{
		AgentAddress:             f.AgentAddress,
		DaemonMode:               orDefault(f.DaemonMode, true),
		WorkloadAPITimeout:       orDefault(f.WorkloadAPITimeout, DefaultWorkloadAPITimeout),
		Hint:                     f.Hint,
		SPIFFEID:                 f.SPIFFEID,
		CertDir:                  f.CertDir,
		SVIDFileName:             f.SVIDFileName,
		SVIDKeyFileName:          f.SVIDKeyFileName,
		SVIDBundleFileName:       f.SVIDBundleFileName,
		CombinedPEMFileName:      f.CombinedPEMFileName,
		AddIntermediatesToBundle: f.AddIntermediatesToBundle,
		IncludeFederatedDomains:  f.IncludeFederatedDomains,
		OmitExpired:              f.OmitExpired,
		CertFileMode:             modeOr(f.CertFileMode, DefaultCertFileMode),
		KeyFileMode:              modeOr(f.KeyFileMode, DefaultKeyFileMode),
		JWTBundleFileName:        f.JWTBundleFileName,
		JWTBundleFileMode:        modeOr(f.JWTBundleFileMode, DefaultJWTBundleFileMode),
		JWTSVIDFileMode:          modeOr(f.JWTSVIDFileMode, DefaultJWTSVIDFileMode),
		LogLevel:                 strings.ToLower(f.LogLevel),
		LogFormat:                strings.ToLower(f.LogFormat),
	}
	v.workloadAPI(f, c)
	v.process(f, c)
	v.x509(f, c)
	c.JWTSVIDs = v.jwtSVIDs(f.JWTSVIDs)
	c.HealthChecks = v.health(f.HealthChecks)
	c.PKCS12 = v.pkcs12(f.PKCS12)
	c.Tunnels = v.tunnels(f.Tunnels)
	c.KafkaGateways = v.kafkaGateways(f, c)
	c.Kafka = v.kafka(f.Kafka, c)
	v.outputs(f, c)
	v.fileNames(f, c)
	return c
}

func orDefault[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// modeOr treats 0 as "use the default", as spiffe-helper does.
func modeOr(m, def fs.FileMode) fs.FileMode {
	if m == 0 {
		return def
	}
	return m
}

// workloadAPI checks how the helper reaches and uses the Workload API.
func (v *validator) workloadAPI(f *fileBody, c *Config) {
	// As spiffe-helper, the environment fills in the address.
	if c.AgentAddress == "" {
		spire, spiffe := v.getenv("SPIRE_AGENT_ADDRESS"), v.getenv("SPIFFE_ENDPOINT_SOCKET")
		switch {
		case spire != "" && spiffe != "":
			v.errorf(f.def, "both SPIRE_AGENT_ADDRESS and SPIFFE_ENDPOINT_SOCKET are set; set only SPIFFE_ENDPOINT_SOCKET")
		case spiffe != "":
			c.AgentAddress = spiffe
		case spire != "":
			c.AgentAddress = spire
		default:
			c.AgentAddress = DefaultAgentAddress
		}
	}
	if c.WorkloadAPITimeout <= 0 {
		v.errorf(f.at("workload_api_timeout"), "key \"workload_api_timeout\" must be positive")
	}
	if c.SPIFFEID != "" {
		if _, err := spiffeid.FromString(c.SPIFFEID); err != nil {
			v.errorf(f.at("spiffe_id"), "key \"spiffe_id\": %v", err)
		}
		if c.Hint != "" {
			v.errorf(f.at("spiffe_id"), "keys \"hint\" and \"spiffe_id\" both select the SVID; set one")
		}
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		v.errorf(f.at("log_level"), "key \"log_level\": %q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		v.errorf(f.at("log_format"), "key \"log_format\": %q is not text or json", c.LogFormat)
	}
}

// process checks the program the helper runs or signals.
func (v *validator) process(f *fileBody, c *Config) {
	c.Cmd, c.PIDFileName, c.RenewSignal, c.OnRotate = f.Cmd, f.PIDFileName, f.RenewSignal, f.OnRotate
	c.StopTimeout = orDefault(f.StopTimeout, DefaultStopTimeout)
	c.RestartOnExit = orDefault(f.RestartOnExit, true)
	c.RestartBackoffMin = orDefault(f.RestartBackoffMin, DefaultRestartBackoffMin)
	c.RestartBackoffMax = orDefault(f.RestartBackoffMax, DefaultRestartBackoffMax)
	c.HoldUntilSVID = f.HoldUntilSVID
	if f.CmdArgs != "" {
		parsed, err := SplitArgs(f.CmdArgs)
		if err != nil {
			v.errorf(f.at("cmd_args"), "key \"cmd_args\": %v", err)
		}
		c.CmdArgs = parsed
	}
	if c.RenewSignal != "" && unix.SignalNum(c.RenewSignal) == 0 {
		v.errorf(f.at("renew_signal"), "key \"renew_signal\": unknown signal %q (use a name such as \"SIGUSR1\")", c.RenewSignal)
	}
	switch c.OnRotate {
	case "":
		c.OnRotate = OnRotateSignal
	case OnRotateSignal, OnRotateRestart:
	default:
		v.errorf(f.at("on_rotate"), "key \"on_rotate\": %q is not \"signal\" or \"restart\"", c.OnRotate)
	}
	if c.OnRotate == OnRotateRestart && c.Cmd == "" {
		v.errorf(f.at("on_rotate"), "key \"on_rotate\": \"restart\" needs \"cmd\"")
	}
	if c.HoldUntilSVID && c.Cmd == "" {
		v.errorf(f.at("hold_until_svid"), "key \"hold_until_svid\" needs \"cmd\"")
	}
	if c.RestartBackoffMin <= 0 || c.RestartBackoffMax < c.RestartBackoffMin {
		v.errorf(f.at("restart_backoff_min", "restart_backoff_max"), "keys \"restart_backoff_min\"/\"restart_backoff_max\": need 0 < min <= max")
	}
	if c.StopTimeout <= 0 {
		v.errorf(f.at("stop_timeout"), "key \"stop_timeout\" must be positive")
	}
	// spiffe-helper's rules.
	if !c.DaemonMode {
		if c.Cmd != "" {
			v.warn(f.at("cmd"), "cmd is set but daemon_mode is false; cmd is ignored")
		}
		if c.RenewSignal != "" {
			v.warn(f.at("renew_signal"), "renew_signal is set but daemon_mode is false; renew_signal is ignored")
		}
		if c.PIDFileName != "" {
			v.errorf(f.at("pid_file_name"), "key \"pid_file_name\" is set but daemon_mode is false; pid_file_name works only in daemon mode")
		}
	}
	if c.PIDFileName != "" && c.RenewSignal == "" {
		v.errorf(f.at("pid_file_name"), "key \"pid_file_name\" needs \"renew_signal\"")
	}
}

// x509 checks the X.509 file set.
func (v *validator) x509(f *fileBody, c *Config) {
	set := 0
	for _, n := range []string{c.SVIDFileName, c.SVIDKeyFileName, c.SVIDBundleFileName} {
		if n != "" {
			set++
		}
	}
	if set != 0 && set != 3 {
		v.errorf(f.at("svid_file_name", "svid_key_file_name", "svid_bundle_file_name"),
			"all or none of \"svid_file_name\", \"svid_key_file_name\", \"svid_bundle_file_name\" must be set")
	}
	if c.KeyFileMode&0o077 != 0 {
		v.warn(f.at("key_file_mode"), fmt.Sprintf("key_file_mode %#o lets other users read the private key; 0600 is recommended", c.KeyFileMode))
	}
}

func (v *validator) jwtSVIDs(entries []*jwtEntry) []JWTSVID {
	var out []JWTSVID
	for i, e := range entries {
		if e.FileName == "" {
			v.errorf(e.def, "jwt_svids[%d]: \"jwt_svid_file_name\" is required", i)
		}
		if e.Audience == "" {
			v.errorf(e.def, "jwt_svids[%d]: \"jwt_audience\" is required", i)
		}
		out = append(out, JWTSVID{Audience: e.Audience, ExtraAudiences: e.ExtraAudiences, FileName: e.FileName})
	}
	return out
}

func (v *validator) health(b *healthBlock) HealthChecks {
	h := HealthChecks{BindAddress: DefaultBindAddress, BindPort: DefaultBindPort, LivenessPath: DefaultLivenessPath, ReadinessPath: DefaultReadinessPath}
	if b == nil {
		return h
	}
	h.ListenerEnabled = b.ListenerEnabled
	if b.BindPort < 0 || b.BindPort > 65535 {
		v.errorf(b.at("bind_port"), "health_checks: \"bind_port\" %d is not a port", b.BindPort)
	}
	if b.BindPort != 0 {
		h.BindPort = int(b.BindPort)
	}
	h.BindAddress = cmp(b.BindAddress, h.BindAddress)
	h.LivenessPath = cmp(b.LivenessPath, h.LivenessPath)
	h.ReadinessPath = cmp(b.ReadinessPath, h.ReadinessPath)
	return h
}

// cmp returns s, or def when s is empty.
func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (v *validator) pkcs12(b *pkcs12Block) *PKCS12 {
	if b == nil {
		return nil
	}
	if b.KeystoreFileName == "" && b.TruststoreFileName == "" {
		v.errorf(b.def, "pkcs12: set \"keystore_file_name\", \"truststore_file_name\" or both")
	}
	if b.PasswordFile != "" && b.PasswordEnv != "" {
		v.errorf(b.at("password_env"), "pkcs12: set one of \"password_file\" and \"password_env\"")
	}
	return &PKCS12{
		KeystoreFileName:   b.KeystoreFileName,
		TruststoreFileName: b.TruststoreFileName,
		PasswordFile:       b.PasswordFile,
		PasswordEnv:        b.PasswordEnv,
		Legacy:             b.Legacy,
	}
}

// outputs checks that the file asks for something, and that what needs
// the X.509 files has them.
func (v *validator) outputs(f *fileBody, c *Config) {
	if !c.X509Enabled() && c.JWTBundleFileName == "" && len(c.JWTSVIDs) == 0 && len(c.Tunnels) == 0 && len(c.KafkaGateways) == 0 {
		v.errorf(f.def, "at least one of the sets (\"svid_file_name\", \"svid_key_file_name\", \"svid_bundle_file_name\"), \"jwt_svids\", \"jwt_bundle_file_name\", a tunnel or a kafka_gateway block must be set")
	}
	if (c.CombinedPEMFileName != "" || c.PKCS12 != nil || c.Kafka != nil) && !c.X509Enabled() {
		v.errorf(f.at("combined_pem_file_name", "pkcs12", "kafka"),
			"\"combined_pem_file_name\", pkcs12 and kafka need \"svid_file_name\", \"svid_key_file_name\" and \"svid_bundle_file_name\"")
	}
	if (c.X509Enabled() || c.JWTBundleFileName != "" || len(c.JWTSVIDs) > 0) && c.CertDir == "" {
		// spiffe-helper writes relative to the working directory then.
		c.CertDir = "."
	}
}

// fileNames rejects output names that would collide or escape cert_dir.
func (v *validator) fileNames(f *fileBody, c *Config) {
	seen := map[string]string{}
	add := func(key, name string, at hcl.Range) {
		if name == "" {
			return
		}
		if strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, "..") || name == "." {
			v.errorf(at, "key %q: %q must be a plain file name inside cert_dir", key, name)
			return
		}
		if prev, dup := seen[name]; dup {
			v.errorf(at, "keys %q and %q both name the file %q", prev, key, name)
			return
		}
		seen[name] = key
	}
	for _, k := range []struct{ key, name string }{
		{"svid_file_name", f.SVIDFileName},
		{"svid_key_file_name", f.SVIDKeyFileName},
		{"svid_bundle_file_name", f.SVIDBundleFileName},
		{"combined_pem_file_name", f.CombinedPEMFileName},
		{"jwt_bundle_file_name", f.JWTBundleFileName},
	} {
		add(k.key, k.name, f.at(k.key))
	}
	for i, j := range f.JWTSVIDs {
		add(fmt.Sprintf("jwt_svids[%d].jwt_svid_file_name", i), j.FileName, j.at("jwt_svid_file_name"))
	}
	if b := f.PKCS12; b != nil {
		add("pkcs12.keystore_file_name", b.KeystoreFileName, b.at("keystore_file_name"))
		add("pkcs12.truststore_file_name", b.TruststoreFileName, b.at("truststore_file_name"))
	}
	if k, b := c.Kafka, f.Kafka; k != nil {
		add("kafka.librdkafka_file_name", k.Librdkafka.FileName, b.at("librdkafka_file_name"))
		add("kafka.deepstream_file_name", k.DeepStream.FileName, b.at("deepstream_file_name"))
		add("kafka.java_file_name", k.Java.FileName, b.at("java_file_name"))
	}
}

// SplitArgs splits cmd_args as spiffe-helper does: on spaces, with double
// quotes grouping an argument and "" standing for a literal quote inside
// one. Single quotes and shell syntax have no meaning.
func SplitArgs(args string) ([]string, error) {
	if args == "" {
		return nil, nil
	}
	r := csv.NewReader(strings.NewReader(args))
	r.Comma = ' '
	out, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("split arguments: %w", err)
	}
	return out, nil
}
