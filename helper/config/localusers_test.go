package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestLocalUsers: a client tunnel and a kafka_gateway admit only the
// helper's own account by default; local_users lists names or uids;
// allow_any_local_user turns the check off; mistakes are reported at their
// key.
func TestLocalUsers(t *testing.T) {
	me := uint32(os.Getuid())
	tunnel := func(extra string) string {
		return minimal + "tunnel \"t\" {\n mode=\"client\"\n listen=\"127.0.0.1:1\"\n target=\"10.0.0.1:2\"\n allowed_spiffe_ids=[\"spiffe://td\"]\n" + extra + "}\n"
	}
	gateway := func(extra string) string {
		return "kafka_gateway \"g\" {\n upstreams = [\"b:1\"]\n trust_domain = \"td\"\n" + extra + "}\n"
	}
	for _, tc := range []struct {
		name, src string
		want      []uint32 // nil: the check is off
	}{
		{"tunnel default", tunnel(""), []uint32{me}},
		{"tunnel listed", tunnel(" local_users = [\"root\", \"65534\"]\n"), []uint32{0, 65534}},
		{"tunnel off", tunnel(" allow_any_local_user = true\n"), nil},
		{"gateway default", gateway(""), []uint32{me}},
		{"gateway listed", gateway(" local_users = [\"nobody\"]\n"), []uint32{65534}},
		{"gateway off", gateway(" allow_any_local_user = true\n"), nil},
	} {
		c, _, err := parse(t, tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var got []uint32
		if len(c.Tunnels) > 0 {
			got = c.Tunnels[0].LocalUsers.UIDs()
		} else {
			got = c.KafkaGateways[0].LocalUsers.UIDs()
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: admitted uids %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct{ name, src, want string }{
		{"unknown user", tunnel(" local_users = [\"no-such-user-edgeid\"]\n"), `"local_users": "no-such-user-edgeid" is neither a uid nor a user of this host`},
		{"both", gateway(" local_users = [\"0\"]\n allow_any_local_user = true\n"), `"local_users" and "allow_any_local_user" exclude each other`},
		{"server tunnel", strings.Replace(tunnel(" local_users = [\"0\"]\n"), `mode="client"`, `mode="server"`, 1), `"local_users" applies to client tunnels only`},
	} {
		_, _, err := parse(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
