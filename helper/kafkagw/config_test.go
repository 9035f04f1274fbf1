package kafkagw

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/internal/localpeer"
)

// TestConfigRefusals: each misconfiguration is refused with an error that
// names it; the same configuration with the fault fixed is accepted.
func TestConfigRefusals(t *testing.T) {
	pol := mustPolicy(t, testPolicy)
	cloud := func() Config {
		return Config{Name: "c", Mode: ModeCloud, Upstreams: []string{"127.0.0.1:9092"}, TrustDomain: td, Policy: pol}
	}
	edge := func() Config {
		return Config{Name: "e", Mode: ModeEdge, Upstreams: []string{"broker.example.org:9093"}, TrustDomain: td}
	}
	for _, tc := range []struct {
		name string
		cfg  func() Config
		want string // "" accepts
	}{
		{"cloud, plaintext to loopback", cloud, ""},
		{"cloud, plaintext to localhost", func() Config { c := cloud(); c.Upstreams = []string{"localhost:9092"}; return c }, ""},
		{"cloud, plaintext to another host", func() Config { c := cloud(); c.Upstreams = []string{"127.0.0.1:9092", "10.0.0.7:9092"}; return c },
			`upstream "10.0.0.7:9092": plaintext to the brokers is for a gateway beside them`},
		{"cloud, plaintext, with upstream IDs", func() Config { c := cloud(); c.UpstreamIDs = []string{"spiffe://" + td + "/kafka"}; return c },
			"upstream IDs [spiffe://" + td + "/kafka] would not be checked"},
		{"cloud, mTLS to another host", func() Config {
			c := cloud()
			c.Upstreams, c.UpstreamTLS = []string{"10.0.0.7:9092"}, true
			return c
		}, ""},
		{"cloud without a policy", func() Config { c := cloud(); c.Policy = nil; return c }, "cloud mode needs a policy"},
		{"cloud with local users", func() Config { c := cloud(); c.LocalUsers = mustGuard(t, 0); return c }, "local users apply to edge mode only"},
		{"cloud with encryption", func() Config { c := cloud(); c.Encrypt = &EncryptConfig{}; return c }, "record encryption runs in edge mode only"},
		{"edge to a remote broker", edge, ""},
		{"edge listening beyond loopback", func() Config { c := edge(); c.ListenHost = "0.0.0.0"; return c }, "set allow_remote_clients = true"},
		{"edge listening beyond loopback, allowed", func() Config { c := edge(); c.ListenHost, c.AllowRemoteClients = "0.0.0.0", true; return c }, ""},
		{"no mode", func() Config { c := edge(); c.Mode = ""; return c }, `mode "" is not`},
		{"no upstream", func() Config { c := edge(); c.Upstreams = nil; return c }, "no upstream brokers"},
		{"upstream without a port", func() Config { c := edge(); c.Upstreams = []string{"broker"}; return c }, `upstream "broker"`},
		{"no trust domain", func() Config { c := edge(); c.TrustDomain = ""; return c }, "trust_domain is empty"},
		{"half a port range", func() Config { c := edge(); c.PortMin = 9000; return c }, "port range 9000-0 is invalid"},
		{"negative lifetime", func() Config { c := edge(); c.MaxConnLifetime = -time.Second; return c }, "max_conn_lifetime is negative"},
	} {
		cfg := tc.cfg()
		_, err := cfg.withDefaults()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: accepted, want an error containing %q", tc.name, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: error %q, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func mustGuard(t *testing.T, uids ...uint32) *localpeer.Guard {
	t.Helper()
	g, err := localpeer.NewGuard(uids)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
