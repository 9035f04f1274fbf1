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

// TestClientTunnelCarriesOnlyItsWorkload: a client-mode tunnel speaks
// upstream with its workload's SVID for whoever connects to its listen
// address. On the edge node ("edge", a network namespace of its own) a
// host next to it ("remote") must not reach it: by default the tunnel
// listens on loopback only, and a config that asks for another address is
// refused at startup. Another account on the node itself (the attacker's
// uid, and root) must not be carried either: the helper asks the kernel
// who owns the connecting socket. The workload's own account goes
// through. With allow_remote_clients = true the remote host gets through,
// and with allow_any_local_user = true the attacker's account does: the
// exposures the defaults prevent.
func TestClientTunnelCarriesOnlyItsWorkload(t *testing.T) {
	requireRoot(t)
	setpriv := harness.RequireCommand(t, "setpriv")
	python, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		t.Fatalf("the local-account attack needs /usr/bin/python3 (Debian package python3, scripts/install-deps.sh): %v", err)
	}
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
	runHelper := func(t *testing.T, listen, allowLine string) (*exec.Cmd, *harness.SyncBuffer) {
		dir := harness.ShortTempDir(t)
		if allowLine != "" {
			allowLine = "\n  " + allowLine
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
		log := &harness.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
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
		return cmd, log
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
	// roundTripAs does the same from a process of uid on the edge node.
	roundTripAs := func(uid int, addr string) error {
		host, port, _ := strings.Cut(addr, ":")
		cmd := nw.Command(context.Background(), "edge", setpriv, "--reuid="+strconv.Itoa(uid), "--regid="+strconv.Itoa(uid),
			"--clear-groups", python, "-c", echoClient, host, port)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("uid %d: %v: %s", uid, err, bytes.TrimSpace(out))
		}
		return nil
	}
	waitLocal := func(t *testing.T, addr string) {
		harness.Eventually(t, time.Minute, func() error { return roundTripAs(victimUID, addr) })
	}
	local := fmt.Sprintf("127.0.0.1:%d", clientPort)

	t.Run("default: loopback only, the workload's account only", func(t *testing.T) {
		_, log := runHelper(t, local, "")
		waitLocal(t, local)
		t.Logf("edge, uid %d → %s: the pipeline's own path works", victimUID, local)
		remote := fmt.Sprintf("%s:%d", edgeIP, clientPort)
		err := roundTrip("remote", remote)
		t.Logf("remote → %s: %v", remote, err)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("a remote host reached the client tunnel: %v (want connection refused)", err)
		}
		err = roundTripAs(attackerUID, local)
		t.Logf("edge, uid %d → %s: %v", attackerUID, local, err)
		if err == nil {
			t.Fatalf("another local account (uid %d) was carried upstream with the workload's SVID", attackerUID)
		}
		if err := roundTrip("edge", local); err == nil {
			t.Fatal("root on the node was carried upstream with the workload's SVID (it is not in local_users)")
		}
		// The refusal is logged before the connection is closed, but the
		// helper's stderr reaches this buffer through a pipe: wait for it.
		want := fmt.Sprintf("belongs to uid %d", attackerUID)
		if err := harness.Poll(10*time.Second, func() error {
			if !strings.Contains(log.String(), want) {
				return errors.New("not logged")
			}
			return nil
		}); err != nil {
			t.Fatalf("the helper log does not name the refused account (%q):\n%s", want, log.String())
		}
	})

	t.Run("protection off: allow_any_local_user", func(t *testing.T) {
		runHelper(t, local, "allow_any_local_user = true")
		waitLocal(t, local)
		err := roundTripAs(attackerUID, local)
		t.Logf("edge, uid %d → %s with allow_any_local_user: %v", attackerUID, local, err)
		if err != nil {
			t.Fatalf("with allow_any_local_user another account should get through (the exposure the default prevents): %v", err)
		}
	})

	t.Run("non-loopback listen refused at startup", func(t *testing.T) {
		cmd, log := runHelper(t, fmt.Sprintf("0.0.0.0:%d", clientPort), "")
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
		runHelper(t, fmt.Sprintf("0.0.0.0:%d", clientPort), "allow_remote_clients = true")
		waitLocal(t, local)
		remote := fmt.Sprintf("%s:%d", edgeIP, clientPort)
		err := roundTrip("remote", remote)
		t.Logf("remote → %s with allow_remote_clients: %v", remote, err)
		if err != nil {
			t.Fatalf("with allow_remote_clients the remote host should get through (the exposure the default prevents): %v", err)
		}
	})
}

// echoClient sends a line to argv[1]:argv[2] and exits 0 once it is echoed.
const echoClient = `import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"edgeid\n")
got = b""
while len(got) < 7:
    b = s.recv(7 - len(got))
    if not b:
        sys.exit("closed before the echo")
    got += b
`
