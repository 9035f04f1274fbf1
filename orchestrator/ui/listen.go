package ui

import (
	"fmt"
	"net"

	"github.com/edgeid/edgeid/internal/loopback"
)

// CheckListen refuses a listen address that is not loopback (an empty
// host means every interface) unless allowRemote is set.
func CheckListen(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("ui: listen address %q: %w", addr, err)
	}
	if allowRemote || loopback.Host(host) {
		return nil
	}
	return fmt.Errorf("ui: listen address %q is not loopback; the page has no login, so pass --allow-remote to serve it beyond this machine", addr)
}

// loopbackRequestHost is true when a request's Host header names this
// machine's loopback, with or without a port.
func loopbackRequestHost(hostHeader string) bool {
	host := hostHeader
	if h, _, err := net.SplitHostPort(hostHeader); err == nil {
		host = h
	}
	return loopback.Host(host)
}
