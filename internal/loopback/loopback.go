// Package loopback decides whether a host names this machine's loopback
// interface: the one check behind every "loopback unless configured
// otherwise" rule (client tunnels, the Kafka gateway's listeners and
// plaintext upstreams, the status page, a plain-HTTP Vault address).
package loopback

import (
	"net/netip"
	"strings"
)

// Host reports whether host, as found in a "host:port" address or a URL,
// names the loopback interface: "localhost" (any case, with or without
// the final dot) or a loopback IP address (127.0.0.0/8, ::1, or 127.x
// mapped into IPv6), with or without brackets. An empty host means every
// interface, and other names may resolve anywhere: both are false.
func Host(host string) bool {
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
