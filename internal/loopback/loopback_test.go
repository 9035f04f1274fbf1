package loopback

import "testing"

func TestHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "localhost.": true,
		"127.0.0.1": true, "127.3.4.5": true, "::1": true, "[::1]": true, "::1%lo": true,
		"::ffff:127.0.0.1": true,
		"":                 false, "0.0.0.0": false, "::": false, "[::]": false,
		"10.0.0.1": false, "::ffff:10.0.0.1": false, "128.0.0.1": false,
		"localhost.example.com": false, "mylocalhost": false, "127.0.0.1.nip.io": false,
		"localhost..": false,
	} {
		if got := Host(host); got != want {
			t.Errorf("Host(%q) = %v, want %v", host, got, want)
		}
	}
}
