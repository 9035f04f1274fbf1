package config

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkaconf"
)

func noEnv(string) string { return "" }

func TestSpiffeHelperV011File(t *testing.T) {
	c, warns, err := Load("testdata/spiffe-helper-v0.11.conf", Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warns {
		if strings.Contains(w.Message, "deprecated") {
			t.Errorf("unexpected deprecation warning: %s", w)
		}
	}
	want := &Config{
		AgentAddress: "/run/spire/sockets/agent.sock",
		Cmd:          "/usr/bin/ghostunnel",
		CmdArgs: []string{"server", "--listen", "127.0.0.1:8443", "--target", "127.0.0.1:8080", "--keystore", "certs/svid_key.pem",
			"--cacert", "certs/svid_bundle.pem", "--allow-uri", "spiffe://example.org/edge/site-a/app"},
		PIDFileName:              "/run/ghostunnel.pid",
		RenewSignal:              "SIGUSR1",
		OnRotate:                 OnRotateSignal,
		StopTimeout:              DefaultStopTimeout,
		RestartOnExit:            true,
		RestartBackoffMin:        DefaultRestartBackoffMin,
		RestartBackoffMax:        DefaultRestartBackoffMax,
		DaemonMode:               true,
		WorkloadAPITimeout:       DefaultWorkloadAPITimeout,
		Hint:                     "internal",
		CertDir:                  "/run/edge/certs",
		SVIDFileName:             "svid.pem",
		SVIDKeyFileName:          "svid_key.pem",
		SVIDBundleFileName:       "svid_bundle.pem",
		AddIntermediatesToBundle: true,
		IncludeFederatedDomains:  true,
		OmitExpired:              true,
		CertFileMode:             0o444,
		KeyFileMode:              0o400,
		JWTSVIDs: []JWTSVID{
			{Audience: "kafka", ExtraAudiences: []string{"mqtt", "hub"}, FileName: "jwt_svid.token"},
			{Audience: "vault", FileName: "vault.token"},
		},
		JWTBundleFileName: "jwt_bundle.json",
		JWTBundleFileMode: 0o640,
		JWTSVIDFileMode:   0o600,
		HealthChecks:      HealthChecks{ListenerEnabled: true, BindAddress: "127.0.0.1" /* edgeid binds loopback by default; spiffe-helper binds every interface */, BindPort: 8082, LivenessPath: "/alive", ReadinessPath: "/isready"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestKubeEdgeCamelCase(t *testing.T) {
	c, warns, err := Load("testdata/kubeedge-example.conf", Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if c.AgentAddress != "/tmp/app-agent.sock" || c.CertDir != "/opt/spire/user-app/certs" ||
		c.RenewSignal != "SIGUSR1" || c.SVIDFileName != "svid.pem" || c.SVIDKeyFileName != "svid_key.pem" ||
		c.SVIDBundleFileName != "svid_bundle.pem" || c.Cmd != "/opt/spire/ghostunnel" || len(c.CmdArgs) != 11 {
		t.Fatalf("camelCase keys not mapped: %+v", c)
	}
	if c.CertFileMode != 0o644 || c.KeyFileMode != 0o600 {
		t.Fatalf("default modes: %v %v", c.CertFileMode, c.KeyFileMode)
	}
	got := map[string]string{}
	for _, w := range warns {
		got[w.Message] = w.Range
	}
	for _, key := range []string{"agentAddress", "cmdArgs", "certDir", "renewSignal", "svidFileName", "svidKeyFileName", "svidBundleFileName"} {
		found := false
		for msg, rng := range got {
			if strings.Contains(msg, `"`+key+`" is deprecated`) {
				found = true
				if !strings.HasPrefix(rng, "testdata/kubeedge-example.conf:") {
					t.Errorf("warning for %s has range %q, want file:line", key, rng)
				}
			}
		}
		if !found {
			t.Errorf("no deprecation warning for %s; warnings: %v", key, warns)
		}
	}
}

func parse(t *testing.T, src string) (*Config, []Warning, error) {
	t.Helper()
	return Parse("helper.conf", []byte(src), Options{Getenv: noEnv})
}

const minimal = `
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "bundle.pem"
`

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown top key", minimal + "\nagent_adress = \"x\"\n", `helper.conf:6,1-13: unknown key "agent_adress"`},
		{"unknown block", minimal + "\nfoo {}\n", `helper.conf:6,1-4: unknown block "foo"`},
		{"unknown key in jwt_svids", minimal + "\njwt_svids = [{jwt_audience=\"a\", jwt_svid_file_name=\"f\", audience=\"x\"}]\n", `helper.conf:6,57-65: unknown key "audience" in jwt_svids[0]`},
		{"unknown key in health_checks", minimal + "\nhealth_checks {\n  port = 1\n}\n", `helper.conf:7,3-7: unknown key "port" in health_checks`},
		{"unknown key in tunnel", minimal + "\ntunnel \"a\" {\n  mode = \"client\"\n  lisen = \"x\"\n}\n", `helper.conf:8,3-8: unknown key "lisen" in tunnel "a"`},
		{"legacy and new", minimal + "\nagentAddress = \"a\"\nagent_address = \"b\"\n", `sets "agent_address" again`},
		{"partial x509", `svid_file_name = "a"`, `all or none of`},
		{"nothing", `agent_address = "/x"`, `at least one of`},
		{"pid without signal", minimal + `pid_file_name = "/x"`, `"pid_file_name" needs "renew_signal"`},
		{"pid in one-shot", minimal + "pid_file_name = \"/x\"\nrenew_signal=\"SIGHUP\"\ndaemon_mode=false", `daemon_mode is false`},
		{"bad signal", minimal + `renew_signal = "SIGFOO"`, `unknown signal "SIGFOO"`},
		{"bad mode", minimal + `cert_file_mode = 0999`, `not an octal file mode`},
		{"bad on_rotate", minimal + "on_rotate = \"reload\"\ncmd=\"x\"", `"reload" is not "signal" or "restart"`},
		{"restart without cmd", minimal + `on_rotate = "restart"`, `"restart" needs "cmd"`},
		{"bad duration", minimal + `stop_timeout = "soon"`, `not a duration`},
		{"wrong type", minimal + `daemon_mode = "maybe"`, `must be true or false`},
		{"tunnel without ids", minimal + "tunnel \"t\" {\n mode=\"server\"\n listen=\"127.0.0.1:1\"\n target=\"127.0.0.1:2\"\n}", `"allowed_spiffe_ids" is required`},
		{"tunnel bad id", minimal + "tunnel \"t\" {\n mode=\"server\"\n listen=\"127.0.0.1:1\"\n target=\"127.0.0.1:2\"\n allowed_spiffe_ids=[\"http://x\"]\n}", `is not a SPIFFE ID`},
		{"tunnel bad mode", minimal + "tunnel \"t\" {\n mode=\"both\"\n listen=\"127.0.0.1:1\"\n target=\"127.0.0.1:2\"\n allowed_spiffe_ids=[\"spiffe://td\"]\n}", `"mode" must be "client" or "server"`},
		{"client tunnel on every interface", minimal + "tunnel \"t\" {\n mode=\"client\"\n listen=\"0.0.0.0:1883\"\n target=\"127.0.0.1:2\"\n allowed_spiffe_ids=[\"spiffe://td\"]\n}", `listen "0.0.0.0:1883": a client tunnel listens on loopback only`},
		{"client tunnel on an empty host", minimal + "tunnel \"t\" {\n mode=\"client\"\n listen=\":1883\"\n target=\"127.0.0.1:2\"\n allowed_spiffe_ids=[\"spiffe://td\"]\n}", `set allow_remote_clients = true to listen elsewhere`},
		{"client tunnel on a name", minimal + "tunnel \"t\" {\n mode=\"client\"\n listen=\"edge-a-1:1883\"\n target=\"127.0.0.1:2\"\n allowed_spiffe_ids=[\"spiffe://td\"]\n}", `a client tunnel listens on loopback only`},
		{"allow_remote_clients on a server tunnel", minimal + "tunnel \"t\" {\n mode=\"server\"\n listen=\"0.0.0.0:1\"\n target=\"127.0.0.1:2\"\n allowed_spiffe_ids=[\"spiffe://td\"]\n allow_remote_clients = true\n}", `applies to client tunnels only`},
		{"file escapes", minimal + `combined_pem_file_name = "../x.pem"`, `must be a plain file name`},
		{"file collides", minimal + `combined_pem_file_name = "svid.pem"`, `both name the file "svid.pem"`},
		{"kafka bad algo", minimal + "kafka {\n endpoint_identification_algorithm = \"ssl\"\n}", `is not "https" or "none"`},
		{"java pem needs combined", minimal + "kafka {\n java_file_name = \"client.properties\"\n}", `needs "combined_pem_file_name"`},
		{"syntax", "svid_file_name = ", `helper.conf:1`},
		{"hint and id", minimal + "hint=\"a\"\nspiffe_id=\"spiffe://td/a\"", `set one`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parse(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestListenerDefaults: a client tunnel may listen beyond loopback only when
// told to, and health and metrics bind loopback unless told otherwise.
func TestListenerDefaults(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:1883", "127.9.9.9:1883", "[::1]:1883", "localhost:1883"} {
		src := minimal + "tunnel \"t\" {\n mode=\"client\"\n listen=\"" + listen + "\"\n target=\"10.0.0.1:8883\"\n allowed_spiffe_ids=[\"spiffe://td\"]\n}\nhealth_checks { listener_enabled = true }\n"
		c, _, err := parse(t, src)
		if err != nil {
			t.Fatalf("listen %s: %v", listen, err)
		}
		if c.HealthChecks.BindAddress != "127.0.0.1" {
			t.Errorf("health bind address %q, want 127.0.0.1 by default", c.HealthChecks.BindAddress)
		}
	}
	c, _, err := parse(t, minimal+"tunnel \"t\" {\n mode=\"client\"\n listen=\"0.0.0.0:1883\"\n target=\"10.0.0.1:8883\"\n allowed_spiffe_ids=[\"spiffe://td\"]\n allow_remote_clients = true\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Tunnels[0].AllowRemoteClients {
		t.Error("allow_remote_clients not set")
	}
}

func TestReportsEveryUnknownKey(t *testing.T) {
	_, _, err := parse(t, minimal+"\nfoo = 1\nbar = 2\n")
	if err == nil || !strings.Contains(err.Error(), `"foo"`) || !strings.Contains(err.Error(), `"bar"`) {
		t.Fatalf("want both keys reported, got %v", err)
	}
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want fs.FileMode
	}{
		{"0644", 0o644},
		{"0444", 0o444},
		{"444", 444}, // decimal, as spiffe-helper's HCL 1 parser reads it
		{`"0640"`, 0o640},
		{`"600"`, 0o600},
		{"0", DefaultCertFileMode},
	} {
		c, _, err := parse(t, minimal+"cert_file_mode = "+tc.src)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if c.CertFileMode != tc.want {
			t.Errorf("cert_file_mode = %s: got %#o, want %#o", tc.src, c.CertFileMode, tc.want)
		}
	}
}

func TestAgentAddressFromEnvironment(t *testing.T) {
	env := map[string]string{"SPIFFE_ENDPOINT_SOCKET": "unix:///run/agent.sock"}
	c, _, err := Parse("h.conf", []byte(minimal), Options{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if c.AgentAddress != "unix:///run/agent.sock" {
		t.Fatalf("agent address %q", c.AgentAddress)
	}
	c, _, _ = parse(t, minimal)
	if c.AgentAddress != DefaultAgentAddress {
		t.Fatalf("default agent address %q", c.AgentAddress)
	}
}

func TestEdgeidKeys(t *testing.T) {
	src := minimal + `
cert_dir = "/run/certs"
cmd = "kcat"
cmd_args = "-P -t \"topic one\""
on_rotate = "restart"
stop_timeout = "3s"
restart_backoff_min = "200ms"
restart_backoff_max = "5s"
spiffe_id = "spiffe://example.org/edge/site-a/cam"
combined_pem_file_name = "svid_combined.pem"
pkcs12 {
  keystore_file_name = "keystore.p12"
  truststore_file_name = "truststore.p12"
  password_env = "STORE_PASS"
}
kafka {
  bootstrap_servers = "127.0.0.1:9093"
  endpoint_identification_algorithm = "none"
  deepstream_partition_key = "sensor.id"
  java_keystore_type = "PKCS12"
  librdkafka_properties = { "client.id" = "cam-1", "ssl.cipher.suites" = "" }
}
tunnel "mqtt" {
  mode = "client"
  listen = "127.0.0.1:1883"
  target = "127.0.0.1:8883"
  allowed_spiffe_ids = ["spiffe://example.org/edge/site-a/mosquitto", "spiffe://example.org/cloud/*"]
  max_conn_lifetime = "1h"
}
health_checks = { listener_enabled = true, bind_address = "127.0.0.1", bind_port = 9090 }
`
	c, _, err := parse(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.CmdArgs, []string{"-P", "-t", "topic one"}) {
		t.Errorf("cmd_args %q", c.CmdArgs)
	}
	if c.OnRotate != OnRotateRestart || c.StopTimeout != 3*time.Second || c.RestartBackoffMin != 200*time.Millisecond {
		t.Errorf("process keys: %+v", c)
	}
	if c.PKCS12 == nil || c.PKCS12.PasswordEnv != "STORE_PASS" || c.PKCS12.KeystoreFileName != "keystore.p12" {
		t.Errorf("pkcs12: %+v", c.PKCS12)
	}
	k := c.Kafka
	if k == nil || k.EndpointIdentificationAlgorithm != "none" || k.Librdkafka.FileName != "" ||
		k.DeepStream.FileName != DefaultDeepStreamFileName || k.Java.FileName != DefaultJavaFileName || k.JavaKeystoreType != "PKCS12" {
		t.Errorf("kafka: %+v", k)
	}
	if !reflect.DeepEqual(k.Librdkafka.Extra, []kafkaconf.Property{{Key: "client.id", Value: "cam-1"}, {Key: "ssl.cipher.suites", Value: ""}}) {
		t.Errorf("librdkafka_properties: %+v", k.Librdkafka.Extra)
	}
	if len(c.Tunnels) != 1 || c.Tunnels[0].MaxConnLifetime != time.Hour || c.Tunnels[0].DialTimeout != DefaultDialTimeout {
		t.Errorf("tunnels: %+v", c.Tunnels)
	}
	if !c.HealthChecks.ListenerEnabled || c.HealthChecks.BindAddress != "127.0.0.1" || c.HealthChecks.BindPort != 9090 || c.HealthChecks.LivenessPath != "/live" {
		t.Errorf("health: %+v", c.HealthChecks)
	}
}

func TestSplitArgs(t *testing.T) {
	got, err := SplitArgs(`-c "echo hello" """"`)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"-c", "echo hello", `"`}) {
		t.Fatalf("%q", got)
	}
	got, _ = SplitArgs(`-c 'echo hi'`)
	if !reflect.DeepEqual(got, []string{"-c", "'echo", "hi'"}) {
		t.Fatalf("single quotes must not group: %q", got)
	}
}

// TestProblemsAtTheirKey: a value the validators refuse is reported at the
// key that holds it, and every problem comes in file order.
func TestProblemsAtTheirKey(t *testing.T) {
	src := minimal + "on_rotate = \"reload\"\ncmd = \"x\"\ntunnel \"t\" {\n  mode = \"both\"\n  listen = \"127.0.0.1:1\"\n  target = \"127.0.0.1:2\"\n  allowed_spiffe_ids = [\"spiffe://td\"]\n}\nlog_level = \"loud\"\n"
	_, _, err := parse(t, src)
	if err == nil {
		t.Fatal("no error")
	}
	want := "config: " + strings.Join([]string{
		`helper.conf:5,1-10: key "on_rotate": "reload" is not "signal" or "restart"`,
		`helper.conf:8,3-7: tunnel "t": "mode" must be "client" or "server", got "both"`,
		`helper.conf:13,1-10: key "log_level": "loud" is not debug, info, warn or error`,
	}, "\n")
	if err.Error() != want {
		t.Fatalf("error\n%s\nwant\n%s", err, want)
	}
	// A problem of the whole file names the file.
	_, _, err = parse(t, `agent_address = "/x"`)
	if err == nil || !strings.HasPrefix(err.Error(), "config: helper.conf: at least one of") {
		t.Fatalf("error %v, want it to name the file", err)
	}
}
