package config

import (
	"fmt"
	"net"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/edgeid/edgeid/helper/tunnel"
)

// tunnels checks every tunnel block; names must differ.
func (v *validator) tunnels(blocks []*tunnelBlock) []tunnel.Config {
	var out []tunnel.Config
	names := map[string]bool{}
	for _, b := range blocks {
		tc := v.tunnel(b)
		if names[tc.Name] {
			v.errorf(b.def, "tunnel %q: name used twice", tc.Name)
		}
		names[tc.Name] = true
		out = append(out, tc)
	}
	return out
}

func (v *validator) tunnel(b *tunnelBlock) tunnel.Config {
	tc := tunnel.Config{
		Name:               b.Name,
		Mode:               b.Mode,
		Listen:             b.Listen,
		Target:             b.Target,
		AllowedSPIFFEIDs:   b.AllowedSPIFFEIDs,
		AllowRemoteClients: b.AllowRemoteClients,
		MaxConnLifetime:    b.MaxConnLifetime,
		DialTimeout:        DefaultDialTimeout,
	}
	if b.DialTimeout > 0 {
		tc.DialTimeout = b.DialTimeout
	}
	where := fmt.Sprintf("tunnel %q", b.Name)
	if tc.Mode != tunnel.ModeClient && tc.Mode != tunnel.ModeServer {
		v.errorf(b.at("mode"), "%s: \"mode\" must be \"client\" or \"server\", got %q", where, tc.Mode)
	}
	for _, kv := range []struct{ key, val string }{{"listen", tc.Listen}, {"target", tc.Target}} {
		if _, _, err := net.SplitHostPort(kv.val); err != nil {
			v.errorf(b.at(kv.key), "%s: %q must be host:port: %v", where, kv.key, err)
		}
	}
	if tc.Mode == tunnel.ModeClient && !tc.AllowRemoteClients {
		if _, _, err := net.SplitHostPort(tc.Listen); err == nil {
			if err := tunnel.RequireLoopback(tc.Listen); err != nil {
				v.errorf(b.at("listen"), "%s: %v", where, err)
			}
		}
	}
	if tc.Mode == tunnel.ModeServer {
		for _, key := range []string{"allow_remote_clients", "local_users", "allow_any_local_user"} {
			if _, set := b.keys[key]; set {
				v.errorf(b.at(key), "%s: %q applies to client tunnels only (a server tunnel authenticates every client)", where, key)
			}
		}
	} else {
		tc.LocalUsers = v.localUsers(&b.spans, where, b.LocalUsers, b.AllowAnyLocalUser)
	}
	if len(tc.AllowedSPIFFEIDs) == 0 {
		v.errorf(b.def, "%s: \"allowed_spiffe_ids\" is required (exact IDs, \"spiffe://td/prefix/*\" or \"spiffe://td\")", where)
	}
	for _, id := range tc.AllowedSPIFFEIDs {
		if err := ValidateIDPattern(id); err != nil {
			v.errorf(b.at("allowed_spiffe_ids"), "%s: \"allowed_spiffe_ids\": %v", where, err)
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
