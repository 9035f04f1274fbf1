package config

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/helper/tunnel"
)

// FuzzParse: any bytes either load or fail with an error; a loaded config
// holds only values the validators allow.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/spiffe-helper-v0.11.conf", "testdata/kubeedge-example.conf", "../../conf/helper.conf"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(minimal + "health_checks = { bind_port = 1 }\njwt_svids = [{jwt_audience = \"a\", jwt_svid_file_name = \"t\"}]\ncert_file_mode = 0640\n"))
	f.Add([]byte(minimal + "kafka {\n librdkafka_properties = { \"a.b\" = \"c\" }\n}\ntunnel \"t\" {\n mode = \"server\"\n}\n"))
	f.Add([]byte(gatewayConf))
	f.Add([]byte("kafka_gateway \"g\" {\n upstreams = [\"b:1\"]\n trust_domain = \"td\"\n port_min = 1\n port_max = 2\n listen_host = \"0.0.0.0\"\n allow_remote_clients = true\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, _, err := Parse("fuzz.conf", src, Options{Getenv: noEnv})
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		for _, m := range []uint32{uint32(c.CertFileMode), uint32(c.KeyFileMode), uint32(c.JWTBundleFileMode), uint32(c.JWTSVIDFileMode)} {
			if m == 0 || m > 0o777 {
				t.Fatalf("mode %#o", m)
			}
		}
		for _, name := range []string{c.SVIDFileName, c.SVIDKeyFileName, c.SVIDBundleFileName, c.CombinedPEMFileName, c.JWTBundleFileName} {
			if strings.ContainsAny(name, `/\`) {
				t.Fatalf("file name %q escapes cert_dir", name)
			}
		}
		if c.HealthChecks.BindPort < 1 || c.HealthChecks.BindPort > 65535 {
			t.Fatalf("bind_port %d", c.HealthChecks.BindPort)
		}
		for _, g := range c.KafkaGateways {
			if g.Mode != "edge" || g.TrustDomain == "" || len(g.Upstreams) == 0 || (g.PortMin == 0) != (g.PortMax == 0) || g.PortMin > g.PortMax {
				t.Fatalf("kafka_gateway %+v", g)
			}
			if !g.AllowRemoteClients && tunnel.RequireLoopback(net.JoinHostPort(g.ListenHost, "0")) != nil {
				t.Fatalf("kafka_gateway %q listens on %q without allow_remote_clients", g.Name, g.ListenHost)
			}
		}
		if c.OnRotate != OnRotateSignal && c.OnRotate != OnRotateRestart {
			t.Fatalf("on_rotate %q", c.OnRotate)
		}
	})
}
