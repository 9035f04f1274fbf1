package loopback

import "testing"

func TestHost(t *testing.T) {
	loopback := []string{"localhost", "LocalHost", "localhost.", "127.0.0.1", "127.3.4.5",
		"::1", "[::1]", "::1%lo", "::ffff:127.0.0.1"}
	elsewhere := []string{"", "0.0.0.0", "::", "[::]", "10.0.0.1", "::ffff:10.0.0.1", "128.0.0.1",
		"localhost.example.com", "mylocalhost", "127.0.0.1.nip.io", "localhost.."}
	for _, h := range loopback {
		if !Host(h) {
			t.Errorf("Host(%q) = false, want true", h)
		}
	}
	for _, h := range elsewhere {
		if Host(h) {
			t.Errorf("Host(%q) = true, want false", h)
		}
	}
}
