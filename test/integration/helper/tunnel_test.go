package helper

import (
	"context"
	"crypto/tls"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// tunnelHelper starts an edgeid-helper that runs one tunnel and returns the
// listen address.
func tunnelHelper(t *testing.T, sp *spire, dir, name, id, mode, target, allowed string) string {
	t.Helper()
	listen := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	conf := writeConf(t, dir, name+".conf", `
agent_address = "`+sp.agent.SocketPath+`"
spiffe_id = "`+id+`"
tunnel "`+name+`" {
  mode = "`+mode+`"
  listen = "`+listen+`"
  target = "`+target+`"
  allowed_spiffe_ids = ["`+allowed+`"]
}
`)
	p := startHelper(t, name, dir, conf, nil)
	harness.Eventually(t, 60*time.Second, func() error {
		if !strings.Contains(p.Log(), "Tunnel listening") {
			return fmt.Errorf("%s not listening yet", name)
		}
		return nil
	})
	return listen
}

// mqttRoundTrip subscribes and publishes one message through addr.
func mqttRoundTrip(t *testing.T, sub, pub, addr, msg string) error {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic := "edge/site-a/events"
	subCmd := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-t", topic, "-C", "1", "-W", "10", "-q", "1")
	var out strings.Builder
	subCmd.Stdout, subCmd.Stderr = &out, &out
	if err := subCmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- subCmd.Wait() }()
	// Publish until the subscriber, once subscribed, gets one and exits.
	var perr, serr error
	finished := false
	for i := 0; i < 30 && !finished; i++ {
		select {
		case serr = <-done:
			finished = true
			continue
		case <-time.After(300 * time.Millisecond):
		}
		pubOut, err := exec.CommandContext(ctx, pub, "-h", host, "-p", port, "-t", topic, "-m", msg, "-q", "1").CombinedOutput()
		if err != nil {
			perr = fmt.Errorf("mosquitto_pub: %v: %s", err, strings.TrimSpace(string(pubOut)))
		}
	}
	if !finished {
		serr = <-done
	}
	if strings.TrimSpace(out.String()) != msg {
		return fmt.Errorf("subscriber got %q (%v; last publish error: %v)", out.String(), serr, perr)
	}
	return nil
}

// TestTunnelMQTT runs mosquitto behind a server-mode tunnel and MQTT
// clients through a client-mode tunnel, each tunnel in its own
// edgeid-helper with its own SVID.
func TestTunnelMQTT(t *testing.T) {
	mosq := harness.RequireCommand(t, "mosquitto")
	pub := harness.RequireCommand(t, "mosquitto_pub")
	sub := harness.RequireCommand(t, "mosquitto_sub")
	sp := startSPIRE(t, 16*time.Second)
	sp.register(t, idApp, "", 10*time.Minute)
	sp.register(t, idMosquitto, "", 16*time.Second)
	sp.register(t, idIntruder, "", 10*time.Minute)
	harness.FetchX509SVIDFor(t, sp.agent.SocketPath, idMosquitto)
	harness.FetchX509SVIDFor(t, sp.agent.SocketPath, idApp)

	dir := harness.ShortTempDir(t)
	mqttPort := harness.FreePort(t)
	mconf := writeConf(t, dir, "mosquitto.conf", fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", mqttPort))
	harness.StartProcess(t, harness.ProcessSpec{Name: "mosquitto", Bin: mosq, Args: []string{"-c", mconf}, Dir: dir})
	mqttAddr := "127.0.0.1:" + strconv.Itoa(mqttPort)

	server := tunnelHelper(t, sp, dir, "mqtt-server", idMosquitto, "server", mqttAddr, idApp)
	client := tunnelHelper(t, sp, dir, "mqtt-client", idApp, "client", server, idMosquitto)

	t.Run("publish and subscribe through the tunnel pair", func(t *testing.T) {
		if err := mqttRoundTrip(t, sub, pub, client, "hello-through-tunnels"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("wrong SPIFFE ID refused", func(t *testing.T) {
		// A client tunnel whose SVID the server does not allow.
		intruder := tunnelHelper(t, sp, dir, "mqtt-intruder", idIntruder, "client", server, idMosquitto)
		if err := mqttRoundTrip(t, sub, pub, intruder, "should-not-pass"); err == nil {
			t.Fatal("the server tunnel let a non-allowed SPIFFE ID through")
		}
		// A client tunnel that expects a different server ID.
		picky := tunnelHelper(t, sp, dir, "mqtt-picky", idApp, "client", server, "spiffe://example.org/edge/site-a/other-broker")
		if err := mqttRoundTrip(t, sub, pub, picky, "should-not-pass"); err == nil {
			t.Fatal("the client tunnel accepted a server with the wrong SPIFFE ID")
		}
	})

	t.Run("connections after a rotation use the new certificate", func(t *testing.T) {
		source := watchSVID(t, sp.agent.SocketPath, idApp)
		probe := func() string {
			cfg := tlsconfig.MTLSClientConfig(source, source, tlsconfig.AuthorizeID(spiffeid.RequireFromString(idMosquitto)))
			c, err := tls.Dial("tcp", server, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
		}
		current := func() string {
			x := harness.FetchX509Context(t, sp.agent.SocketPath)
			for _, s := range x.SVIDs {
				if s.ID.String() == idMosquitto {
					return s.Certificates[0].SerialNumber.Text(16)
				}
			}
			t.Fatal("no mosquitto SVID")
			return ""
		}
		first := probe()
		for i := 1; i <= 2; i++ {
			var next string
			harness.Eventually(t, 60*time.Second, func() error {
				next = probe()
				if next == first {
					return fmt.Errorf("server tunnel still presents %s", first)
				}
				return nil
			})
			if cur := current(); cur != next {
				// The agent may have rotated again in between; the tunnel
				// must catch up at once.
				harness.Eventually(t, 5*time.Second, func() error {
					if p := probe(); p != current() {
						return fmt.Errorf("tunnel presents %s, agent offers %s", p, current())
					}
					return nil
				})
			}
			t.Logf("rotation %d: server tunnel presents %s (was %s)", i, next, first)
			first = next
			if err := mqttRoundTrip(t, sub, pub, client, "after-rotation-"+strconv.Itoa(i)); err != nil {
				t.Fatalf("MQTT after rotation %d: %v", i, err)
			}
		}
	})
}
