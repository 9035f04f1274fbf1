package attack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

// TestClientTunnelRefusesRemoteClients: a client-mode tunnel hands its
// workload's SVID to whoever connects to its listen address. On the edge
// node ("edge", a network namespace of its own) a host next to it
// ("remote") must not reach it: by default the tunnel listens on loopback
// only, and a config that asks for another address is refused at startup.
// The pipeline on the node itself still goes through. With
// allow_remote_clients = true (the protection off) the remote host gets
// through, which is what the default prevents.
func TestClientTunnelRefusesRemoteClients(t *testing.T) {
	requireRoot(t)
	setpriv := harness.RequireCommand(t, "setpriv")
	nw := harness.NewNetwork(t, []string{"edge", "remote"}, nil)
	const td = "example.org"
	server := harness.StartSpireServer(t, harness.ServerConfig{TrustDomain: td})
	token := server.JoinToken(t, "")
	agent := harness.StartSpireAgent(t, harness.AgentConfig{Server: server, JoinToken: token,
		Plugins: "    WorkloadAttestor \"unix\" {\n        plugin_data {}\n    }\n", NoUnixAttestor: true})
	const appID = "spiffe://" + td + "/edge/site-a/app"
	server.CreateEntry(t, harness.Entry{ParentID: harness.JoinTokenAgentID(td, token), SPIFFEID: appID,
		Selectors: []string{"unix:uid:" + strconv.Itoa(victimUID)}})

	helperBin := filepath.Join(harness.ShortTempDir(t), "edgeid-helper")
	build := exec.Command("go", "build", "-o", helperBin, "./helper/cmd/edgeid-helper")
	build.Dir = harness.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build edgeid-helper: %v\n%s", err, out)
	}

	// The service the tunnel pair protects: an echo server on the edge
	// node's loopback, behind a server tunnel of the same helper.
	echo, err := nw.Listen("edge", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	const serverPort, clientPort = 18443, 18444
	edgeIP := nw.Hosts["edge"].IP

	// runHelper starts the helper as the workload's uid inside the edge
	// namespace and returns it with its log.
	runHelper := func(t *testing.T, listen string, allow bool) (*exec.Cmd, *bytes.Buffer) {
		dir := harness.ShortTempDir(t)
		allowLine := ""
		if allow {
			allowLine = "\n  allow_remote_clients = true"
		}
		conf := fmt.Sprintf(`agent_address = %q
tunnel "backend" {
  mode = "server"
  listen = "127.0.0.1:%d"
  target = %q
  allowed_spiffe_ids = [%q]
}
tunnel "app" {
  mode = "client"
  listen = %q
  target = "127.0.0.1:%d"
  allowed_spiffe_ids = [%q]%s
}
`, agent.SocketPath, serverPort, echo.Addr().String(), appID, listen, serverPort, appID, allowLine)
		path := filepath.Join(dir, "helper.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := nw.Command(context.Background(), "edge", setpriv, "--reuid="+strconv.Itoa(victimUID), "--regid="+strconv.Itoa(victimUID),
			"--clear-groups", helperBin, "-config", path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("helper log:\n%s", log.String())
			}
		})
		return cmd, &log
	}
	// roundTrip sends a line from host to addr and waits for its echo.
	roundTrip := func(host, addr string) error {
		c, err := nw.Dial(host, addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("edgeid\n")); err != nil {
			return err
		}
		buf := make([]byte, 7)
		if _, err := io.ReadFull(c, buf); err != nil {
			return fmt.Errorf("no echo through the tunnel: %w", err)
		}
		return nil
	}
	waitLocal := func(t *testing.T, addr string) {
		harness.Eventually(t, time.Minute, func() error { return roundTrip("edge", addr) })
	}

	t.Run("default: loopback only", func(t *testing.T) {
		runHelper(t, fmt.Sprintf("127.0.0.1:%d", clientPort), false)
		local := fmt.Sprintf("127.0.0.1:%d", clientPort)
		waitLocal(t, local)
		t.Logf("edge → %s: the pipeline's own path works", local)
		remote := fmt.Sprintf("%s:%d", edgeIP, clientPort)
		err := roundTrip("remote", remote)
		t.Logf("remote → %s: %v", remote, err)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("a remote host reached the client tunnel: %v (want connection refused)", err)
		}
	})

	t.Run("non-loopback listen refused at startup", func(t *testing.T) {
		cmd, log := runHelper(t, fmt.Sprintf("0.0.0.0:%d", clientPort), false)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("the helper accepted a client tunnel on 0.0.0.0")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the helper did not refuse a client tunnel on 0.0.0.0")
		}
		if !strings.Contains(log.String(), "a client tunnel listens on loopback only") {
			t.Fatalf("the refusal does not say why:\n%s", log.String())
		}
		if err := roundTrip("remote", fmt.Sprintf("%s:%d", edgeIP, clientPort)); err == nil {
			t.Fatal("a remote host reached a tunnel the helper refused to start")
		}
	})

	t.Run("protection off: allow_remote_clients", func(t *testing.T) {
		runHelper(t, fmt.Sprintf("0.0.0.0:%d", clientPort), true)
		waitLocal(t, fmt.Sprintf("127.0.0.1:%d", clientPort))
		remote := fmt.Sprintf("%s:%d", edgeIP, clientPort)
		err := roundTrip("remote", remote)
		t.Logf("remote → %s with allow_remote_clients: %v", remote, err)
		if err != nil {
			t.Fatalf("with allow_remote_clients the remote host should get through (the exposure the default prevents): %v", err)
		}
	})
}
