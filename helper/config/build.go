package config

import (
	"encoding/csv"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sys/unix"

	"github.com/edgeid/edgeid/helper/kafkaconf"
	"github.com/edgeid/edgeid/helper/tunnel"
)

func (p *parser) build(opts Options) (*Config, []error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	r := p.raw
	str := func(key string) string { s, _ := r[key].(string); return s }
	boolean := func(key string, def bool) bool {
		if b, ok := r[key].(bool); ok {
			return b
		}
		return def
	}
	duration := func(key string, def time.Duration) time.Duration {
		if d, ok := r[key].(time.Duration); ok {
			return d
		}
		return def
	}
	mode := func(key string, def fs.FileMode) fs.FileMode {
		if m, ok := r[key].(fs.FileMode); ok && m != 0 {
			// spiffe-helper treats 0 as "use the default".
			return m
		}
		return def
	}

	c := &Config{
		AgentAddress:             str("agent_address"),
		Cmd:                      str("cmd"),
		PIDFileName:              str("pid_file_name"),
		RenewSignal:              str("renew_signal"),
		OnRotate:                 str("on_rotate"),
		StopTimeout:              duration("stop_timeout", DefaultStopTimeout),
		RestartOnExit:            boolean("restart_on_exit", true),
		RestartBackoffMin:        duration("restart_backoff_min", DefaultRestartBackoffMin),
		RestartBackoffMax:        duration("restart_backoff_max", DefaultRestartBackoffMax),
		HoldUntilSVID:            boolean("hold_until_svid", false),
		DaemonMode:               boolean("daemon_mode", true),
		WorkloadAPITimeout:       duration("workload_api_timeout", DefaultWorkloadAPITimeout),
		Hint:                     str("hint"),
		SPIFFEID:                 str("spiffe_id"),
		CertDir:                  str("cert_dir"),
		SVIDFileName:             str("svid_file_name"),
		SVIDKeyFileName:          str("svid_key_file_name"),
		SVIDBundleFileName:       str("svid_bundle_file_name"),
		CombinedPEMFileName:      str("combined_pem_file_name"),
		AddIntermediatesToBundle: boolean("add_intermediates_to_bundle", false),
		IncludeFederatedDomains:  boolean("include_federated_domains", false),
		OmitExpired:              boolean("omit_expired", false),
		CertFileMode:             mode("cert_file_mode", DefaultCertFileMode),
		KeyFileMode:              mode("key_file_mode", DefaultKeyFileMode),
		JWTBundleFileName:        str("jwt_bundle_file_name"),
		JWTBundleFileMode:        mode("jwt_bundle_file_mode", DefaultJWTBundleFileMode),
		JWTSVIDFileMode:          mode("jwt_svid_file_mode", DefaultJWTSVIDFileMode),
		LogLevel:                 strings.ToLower(str("log_level")),
	}

	// Workload API address: as spiffe-helper, the environment fills it in.
	if c.AgentAddress == "" {
		spire, spiffe := opts.Getenv("SPIRE_AGENT_ADDRESS"), opts.Getenv("SPIFFE_ENDPOINT_SOCKET")
		switch {
		case spire != "" && spiffe != "":
			fail("both SPIRE_AGENT_ADDRESS and SPIFFE_ENDPOINT_SOCKET are set; set only SPIFFE_ENDPOINT_SOCKET")
		case spiffe != "":
			c.AgentAddress = spiffe
		case spire != "":
			c.AgentAddress = spire
		default:
			c.AgentAddress = DefaultAgentAddress
		}
	}

	if args := str("cmd_args"); args != "" {
		parsed, err := SplitArgs(args)
		if err != nil {
			fail("key \"cmd_args\": %v", err)
		}
		c.CmdArgs = parsed
	}
	if c.RenewSignal != "" && unix.SignalNum(c.RenewSignal) == 0 {
		fail("key \"renew_signal\": unknown signal %q (use a name such as \"SIGUSR1\")", c.RenewSignal)
	}
	switch c.OnRotate {
	case "":
		c.OnRotate = OnRotateSignal
	case OnRotateSignal, OnRotateRestart:
	default:
		fail("key \"on_rotate\": %q is not \"signal\" or \"restart\"", c.OnRotate)
	}
	if c.OnRotate == OnRotateRestart && c.Cmd == "" {
		fail("key \"on_rotate\": \"restart\" needs \"cmd\"")
	}
	if c.HoldUntilSVID && c.Cmd == "" {
		fail("key \"hold_until_svid\" needs \"cmd\"")
	}
	if c.RestartBackoffMin <= 0 || c.RestartBackoffMax < c.RestartBackoffMin {
		fail("keys \"restart_backoff_min\"/\"restart_backoff_max\": need 0 < min <= max")
	}
	if c.StopTimeout <= 0 {
		fail("key \"stop_timeout\" must be positive")
	}
	if c.WorkloadAPITimeout <= 0 {
		fail("key \"workload_api_timeout\" must be positive")
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		fail("key \"log_level\": %q is not debug, info, warn or error", c.LogLevel)
	}

	// spiffe-helper's rules.
	if !c.DaemonMode {
		if c.Cmd != "" {
			p.warn("cmd is set but daemon_mode is false; cmd is ignored")
		}
		if c.RenewSignal != "" {
			p.warn("renew_signal is set but daemon_mode is false; renew_signal is ignored")
		}
		if c.PIDFileName != "" {
			fail("key \"pid_file_name\" is set but daemon_mode is false; pid_file_name works only in daemon mode")
		}
	}
	if c.PIDFileName != "" && c.RenewSignal == "" {
		fail("key \"pid_file_name\" needs \"renew_signal\"")
	}
	x509Set := 0
	for _, n := range []string{c.SVIDFileName, c.SVIDKeyFileName, c.SVIDBundleFileName} {
		if n != "" {
			x509Set++
		}
	}
	if x509Set != 0 && x509Set != 3 {
		fail("all or none of \"svid_file_name\", \"svid_key_file_name\", \"svid_bundle_file_name\" must be set")
	}
	if c.SPIFFEID != "" {
		if _, err := spiffeid.FromString(c.SPIFFEID); err != nil {
			fail("key \"spiffe_id\": %v", err)
		}
		if c.Hint != "" {
			fail("keys \"hint\" and \"spiffe_id\" both select the SVID; set one")
		}
	}
	if c.KeyFileMode&0o077 != 0 {
		p.warn(fmt.Sprintf("key_file_mode %#o lets other users read the private key; 0600 is recommended", c.KeyFileMode))
	}

	if jwts, ok := r["jwt_svids"].([]rawJWT); ok {
		for i, j := range jwts {
			aud, _ := j.values["jwt_audience"].(string)
			name, _ := j.values["jwt_svid_file_name"].(string)
			extra, _ := j.values["jwt_extra_audiences"].([]string)
			if name == "" {
				fail("jwt_svids[%d]: \"jwt_svid_file_name\" is required", i)
			}
			if aud == "" {
				fail("jwt_svids[%d]: \"jwt_audience\" is required", i)
			}
			c.JWTSVIDs = append(c.JWTSVIDs, JWTSVID{Audience: aud, ExtraAudiences: extra, FileName: name})
		}
	}

	if h, ok := r["health_checks"].(map[string]any); ok {
		c.HealthChecks.ListenerEnabled, _ = h["listener_enabled"].(bool)
		c.HealthChecks.BindAddress, _ = h["bind_address"].(string)
		port, _ := h["bind_port"].(int64)
		if port < 0 || port > 65535 {
			fail("health_checks: \"bind_port\" %d is not a port", port)
		}
		c.HealthChecks.BindPort = int(port)
		c.HealthChecks.LivenessPath, _ = h["liveness_path"].(string)
		c.HealthChecks.ReadinessPath, _ = h["readiness_path"].(string)
	}
	if c.HealthChecks.BindAddress == "" {
		c.HealthChecks.BindAddress = DefaultBindAddress
	}
	if c.HealthChecks.BindPort == 0 {
		c.HealthChecks.BindPort = DefaultBindPort
	}
	if c.HealthChecks.LivenessPath == "" {
		c.HealthChecks.LivenessPath = DefaultLivenessPath
	}
	if c.HealthChecks.ReadinessPath == "" {
		c.HealthChecks.ReadinessPath = DefaultReadinessPath
	}

	if v, ok := r["pkcs12"].(map[string]any); ok {
		ks := &PKCS12{}
		ks.KeystoreFileName, _ = v["keystore_file_name"].(string)
		ks.TruststoreFileName, _ = v["truststore_file_name"].(string)
		ks.PasswordFile, _ = v["password_file"].(string)
		ks.PasswordEnv, _ = v["password_env"].(string)
		ks.Legacy, _ = v["legacy"].(bool)
		if ks.KeystoreFileName == "" && ks.TruststoreFileName == "" {
			fail("pkcs12: set \"keystore_file_name\", \"truststore_file_name\" or both")
		}
		if ks.PasswordFile != "" && ks.PasswordEnv != "" {
			fail("pkcs12: set one of \"password_file\" and \"password_env\"")
		}
		c.PKCS12 = ks
	}

	if v, ok := r["kafka"].(map[string]any); ok {
		c.Kafka = buildKafka(v, c, fail)
	}

	if tunnels, ok := r["tunnel"].([]rawTunnel); ok {
		names := map[string]bool{}
		for _, t := range tunnels {
			tc := buildTunnel(t, fail)
			if names[tc.Name] {
				fail("tunnel %q: name used twice", tc.Name)
			}
			names[tc.Name] = true
			c.Tunnels = append(c.Tunnels, tc)
		}
	}

	if !c.X509Enabled() && c.JWTBundleFileName == "" && len(c.JWTSVIDs) == 0 && len(c.Tunnels) == 0 {
		fail("at least one of the sets (\"svid_file_name\", \"svid_key_file_name\", \"svid_bundle_file_name\"), \"jwt_svids\", \"jwt_bundle_file_name\" or a tunnel block must be set")
	}
	needsX509Files := c.CombinedPEMFileName != "" || c.PKCS12 != nil || c.Kafka != nil
	if needsX509Files && !c.X509Enabled() {
		fail("\"combined_pem_file_name\", pkcs12 and kafka need \"svid_file_name\", \"svid_key_file_name\" and \"svid_bundle_file_name\"")
	}
	if (c.X509Enabled() || c.JWTBundleFileName != "" || len(c.JWTSVIDs) > 0) && c.CertDir == "" {
		// spiffe-helper writes relative to the working directory then.
		c.CertDir = "."
	}
	checkFileNames(c, fail)
	return c, errs
}

func (p *parser) warn(msg string) {
	p.warns = append(p.warns, Warning{Range: p.filename, Message: msg})
}

func buildKafka(v map[string]any, c *Config, fail func(string, ...any)) *Kafka {
	k := &Kafka{}
	k.BootstrapServers, _ = v["bootstrap_servers"].(string)
	k.EndpointIdentificationAlgorithm, _ = v["endpoint_identification_algorithm"].(string)
	k.CipherSuites, _ = v["cipher_suites"].(string)
	output := func(prefix string) kafkaconf.Output {
		var o kafkaconf.Output
		o.FileName, _ = v[prefix+"_file_name"].(string)
		o.Template, _ = v[prefix+"_template"].(string)
		o.Extra, _ = v[prefix+"_properties"].([]kafkaconf.Property)
		return o
	}
	k.Librdkafka, k.DeepStream, k.Java = output("librdkafka"), output("deepstream"), output("java")
	k.DeepStreamPartitionKey, _ = v["deepstream_partition_key"].(string)
	k.JavaKeystoreType, _ = v["java_keystore_type"].(string)
	switch k.EndpointIdentificationAlgorithm {
	case "":
		k.EndpointIdentificationAlgorithm = "https"
	case "https", "none":
	default:
		fail("kafka: \"endpoint_identification_algorithm\" %q is not \"https\" or \"none\"", k.EndpointIdentificationAlgorithm)
	}
	// A template, extra properties or a setting of its own asks for a file.
	if k.Librdkafka.FileName == "" && k.Librdkafka.Template != "" {
		k.Librdkafka.FileName = DefaultLibrdkafkaFileName
	}
	if k.DeepStream.FileName == "" && (k.DeepStream.Template != "" || k.DeepStreamPartitionKey != "" || len(k.DeepStream.Extra) > 0) {
		k.DeepStream.FileName = DefaultDeepStreamFileName
	}
	if k.Java.FileName == "" && (k.Java.Template != "" || k.JavaKeystoreType != "" || len(k.Java.Extra) > 0) {
		k.Java.FileName = DefaultJavaFileName
	}
	if k.Librdkafka.FileName == "" && k.DeepStream.FileName == "" && k.Java.FileName == "" {
		// An empty kafka block renders the librdkafka file.
		k.Librdkafka.FileName = DefaultLibrdkafkaFileName
	}
	switch strings.ToUpper(k.JavaKeystoreType) {
	case "":
		k.JavaKeystoreType = "PEM"
	case "PEM":
		k.JavaKeystoreType = "PEM"
	case "PKCS12":
		k.JavaKeystoreType = "PKCS12"
		if c.PKCS12 == nil || c.PKCS12.KeystoreFileName == "" || c.PKCS12.TruststoreFileName == "" {
			fail("kafka: \"java_keystore_type\" = \"PKCS12\" needs a pkcs12 block with keystore_file_name and truststore_file_name")
		}
	default:
		fail("kafka: \"java_keystore_type\" %q is not \"PEM\" or \"PKCS12\"", k.JavaKeystoreType)
	}
	if k.Java.FileName != "" && k.JavaKeystoreType == "PEM" && c.CombinedPEMFileName == "" {
		fail("kafka: a Java client.properties with \"java_keystore_type\" = \"PEM\" needs \"combined_pem_file_name\" (Java reads key and chain from one file)")
	}
	return k
}

func buildTunnel(t rawTunnel, fail func(string, ...any)) tunnel.Config {
	v := t.values
	tc := tunnel.Config{Name: t.name, DialTimeout: DefaultDialTimeout}
	tc.Mode, _ = v["mode"].(string)
	tc.Listen, _ = v["listen"].(string)
	tc.Target, _ = v["target"].(string)
	tc.AllowedSPIFFEIDs, _ = v["allowed_spiffe_ids"].([]string)
	tc.AllowRemoteClients, _ = v["allow_remote_clients"].(bool)
	if d, ok := v["max_conn_lifetime"].(time.Duration); ok {
		tc.MaxConnLifetime = d
	}
	if d, ok := v["dial_timeout"].(time.Duration); ok && d > 0 {
		tc.DialTimeout = d
	}
	where := fmt.Sprintf("tunnel %q (%s)", t.name, t.rng.String())
	if tc.Mode != tunnel.ModeClient && tc.Mode != tunnel.ModeServer {
		fail("%s: \"mode\" must be \"client\" or \"server\", got %q", where, tc.Mode)
	}
	for _, kv := range []struct{ key, val string }{{"listen", tc.Listen}, {"target", tc.Target}} {
		if _, _, err := net.SplitHostPort(kv.val); err != nil {
			fail("%s: %q must be host:port: %v", where, kv.key, err)
		}
	}
	if tc.Mode == tunnel.ModeClient && !tc.AllowRemoteClients {
		if _, _, err := net.SplitHostPort(tc.Listen); err == nil {
			if err := tunnel.RequireLoopback(tc.Listen); err != nil {
				fail("%s: %v", where, err)
			}
		}
	}
	if tc.Mode == tunnel.ModeServer && tc.AllowRemoteClients {
		fail("%s: \"allow_remote_clients\" applies to client tunnels only (a server tunnel authenticates every client)", where)
	}
	if len(tc.AllowedSPIFFEIDs) == 0 {
		fail("%s: \"allowed_spiffe_ids\" is required (exact IDs, \"spiffe://td/prefix/*\" or \"spiffe://td\")", where)
	}
	for _, id := range tc.AllowedSPIFFEIDs {
		if err := ValidateIDPattern(id); err != nil {
			fail("%s: \"allowed_spiffe_ids\": %v", where, err)
		}
	}
	return tc
}

// ValidateIDPattern checks one allowed_spiffe_ids entry: an exact SPIFFE ID,
// a path prefix ending in "/*", or a bare trust domain "spiffe://td".
func ValidateIDPattern(pattern string) error {
	s := strings.TrimSuffix(pattern, "/*")
	if _, err := spiffeid.FromString(s); err == nil {
		return nil
	}
	if _, err := spiffeid.TrustDomainFromString(s); err == nil && strings.HasPrefix(s, "spiffe://") {
		return nil
	}
	return fmt.Errorf("%q is not a SPIFFE ID, \"spiffe://td/prefix/*\" or \"spiffe://td\"", pattern)
}

// checkFileNames rejects output names that would collide or escape cert_dir.
func checkFileNames(c *Config, fail func(string, ...any)) {
	seen := map[string]string{}
	add := func(key, name string) {
		if name == "" {
			return
		}
		if strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, "..") || name == "." {
			fail("key %q: %q must be a plain file name inside cert_dir", key, name)
			return
		}
		if prev, dup := seen[name]; dup {
			fail("keys %q and %q both name the file %q", prev, key, name)
			return
		}
		seen[name] = key
	}
	add("svid_file_name", c.SVIDFileName)
	add("svid_key_file_name", c.SVIDKeyFileName)
	add("svid_bundle_file_name", c.SVIDBundleFileName)
	add("combined_pem_file_name", c.CombinedPEMFileName)
	add("jwt_bundle_file_name", c.JWTBundleFileName)
	for i, j := range c.JWTSVIDs {
		add(fmt.Sprintf("jwt_svids[%d].jwt_svid_file_name", i), j.FileName)
	}
	if c.PKCS12 != nil {
		add("pkcs12.keystore_file_name", c.PKCS12.KeystoreFileName)
		add("pkcs12.truststore_file_name", c.PKCS12.TruststoreFileName)
	}
	if c.Kafka != nil {
		add("kafka.librdkafka_file_name", c.Kafka.Librdkafka.FileName)
		add("kafka.deepstream_file_name", c.Kafka.DeepStream.FileName)
		add("kafka.java_file_name", c.Kafka.Java.FileName)
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
