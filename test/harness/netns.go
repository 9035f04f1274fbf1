package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Network is a private test network of "hosts", each a network namespace
// of its own, joined by veth pairs to a bridge in one more namespace (the
// switch), on the subnet 10.77.0.0/24. Nothing touches the machine's own
// network namespace. Host names resolve in every host through
// /etc/netns/<namespace>/hosts, which `ip netns exec` mounts over
// /etc/hosts. Everything is removed when the test ends, failed or not.
type Network struct {
	prefix string
	// Hosts by name.
	Hosts map[string]*NetHost
	sw    string
}

// NetHost is one host of a Network.
type NetHost struct {
	Name string
	// NS is the network namespace's name.
	NS string
	// IP is the host's address on the test subnet.
	IP string
	// port is the switch's end of the host's cable.
	port string
}

// NetworkSubnet is the test subnet's prefix: host i gets NetworkSubnet+i.
const NetworkSubnet = "10.77.0."

// NewNetwork creates the namespaces of hosts (addresses .1, .2, ... in
// order) and the switch. aliases adds more names for hosts: each alias
// resolves to every host listed for it, as a DNS name with several
// records would. It needs root and the ip command; without them it fails
// the test with the reason.
func NewNetwork(t testing.TB, hosts []string, aliases map[string][]string) *Network {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("harness: the multi-host network needs root (network namespaces); CI runs as root")
	}
	RequireCommand(t, "ip")
	removeStaleNetworks(t)
	n := &Network{prefix: fmt.Sprintf("eid%d", os.Getpid()), Hosts: map[string]*NetHost{}}
	n.sw = n.prefix + "-switch"
	t.Cleanup(func() { n.destroy(t) })

	n.ip(t, "netns", "add", n.sw)
	n.ip(t, "-n", n.sw, "link", "add", "br0", "type", "bridge")
	n.ip(t, "-n", n.sw, "link", "set", "br0", "up")
	var hostsFile strings.Builder
	hostsFile.WriteString("127.0.0.1 localhost\n::1 localhost\n")
	for i, name := range hosts {
		port := "p" + strconv.Itoa(i+1)
		h := &NetHost{Name: name, NS: n.prefix + "-" + name, IP: NetworkSubnet + strconv.Itoa(i+1), port: port}
		n.Hosts[name] = h
		n.ip(t, "netns", "add", h.NS)
		n.ip(t, "-n", h.NS, "link", "set", "lo", "up")
		n.ip(t, "-n", n.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
		n.ip(t, "-n", n.sw, "link", "set", port, "master", "br0")
		n.ip(t, "-n", n.sw, "link", "set", port, "up")
		n.ip(t, "-n", h.NS, "addr", "add", h.IP+"/24", "dev", "eth0")
		n.ip(t, "-n", h.NS, "link", "set", "eth0", "up")
		fmt.Fprintf(&hostsFile, "%s %s\n", h.IP, name)
	}
	names := make([]string, 0, len(aliases))
	for a := range aliases {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, a := range names {
		for _, target := range aliases[a] {
			h, ok := n.Hosts[target]
			if !ok {
				t.Fatalf("harness: alias %s names unknown host %s", a, target)
			}
			fmt.Fprintf(&hostsFile, "%s %s\n", h.IP, a)
		}
	}
	for _, h := range n.Hosts {
		dir := filepath.Join("/etc/netns", h.NS)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("harness: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hostsFile.String()), 0o644); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	t.Logf("harness: test network %s*: %s", n.prefix, strings.ReplaceAll(strings.TrimSpace(hostsFile.String()), "\n", ", "))
	return n
}

// Cut takes host off the network, as a lost host or a pulled cable: the
// switch's end of its cable goes down, so no packet reaches it or leaves
// it, and connections to it time out rather than being refused. Its
// processes keep running, cut off. Mend plugs it back in.
func (n *Network) Cut(t testing.TB, host string) {
	t.Helper()
	n.ip(t, "-n", n.sw, "link", "set", n.Hosts[host].port, "down")
	t.Logf("harness: %s (%s) is cut off the network", host, n.Hosts[host].IP)
}

// Mend plugs a host that Cut took off back into the network.
func (n *Network) Mend(t testing.TB, host string) {
	t.Helper()
	n.ip(t, "-n", n.sw, "link", "set", n.Hosts[host].port, "up")
	t.Logf("harness: %s (%s) is back on the network", host, n.Hosts[host].IP)
}

func (n *Network) ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("harness: ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Command returns a command that runs bin in host's namespace, with host's
// /etc/hosts.
func (n *Network) Command(ctx context.Context, host, bin string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Hosts[host].NS, bin}, args...)...)
}

// Dial connects to addr (an IP literal and port) from inside host's
// namespace: the socket is made on an OS thread moved into it.
func (n *Network) Dial(host, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays locked and dies with this goroutine, so it
		// never serves another goroutine from inside the namespace.
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", n.Hosts[host].NS))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", n.Hosts[host].NS, err)}
			return
		}
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// Listen opens a TCP listener on addr inside host's namespace: the socket
// is made on an OS thread moved into it, and stays in it whichever
// goroutine accepts on it.
func (n *Network) Listen(host, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", n.Hosts[host].NS))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", n.Hosts[host].NS, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// removeStaleNetworks deletes the namespaces of earlier test processes
// that died before their cleanup ran (killed by a timeout, say): a name
// eid<pid>-... whose pid no longer runs.
func removeStaleNetworks(t testing.TB) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	stale := map[string]*Network{}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "eid") {
			continue
		}
		prefix, _, ok := strings.Cut(fields[0], "-")
		pid, err := strconv.Atoi(strings.TrimPrefix(prefix, "eid"))
		if !ok || err != nil || syscall.Kill(pid, 0) == nil {
			continue
		}
		if stale[prefix] == nil {
			stale[prefix] = &Network{prefix: prefix, Hosts: map[string]*NetHost{}}
		}
		stale[prefix].Hosts[fields[0]] = &NetHost{NS: fields[0]}
	}
	for prefix, n := range stale {
		t.Logf("harness: removing the stale test network %s*", prefix)
		n.destroy(t)
	}
}

// destroy kills every process left in the namespaces, then deletes them
// and their /etc/netns directories.
func (n *Network) destroy(t testing.TB) {
	var namespaces []string
	if n.sw != "" {
		namespaces = append(namespaces, n.sw)
	}
	for _, h := range n.Hosts {
		namespaces = append(namespaces, h.NS)
	}
	for _, ns := range namespaces {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				// The test itself is listed when Dial ran on its main
				// thread, which Go then keeps in the namespace.
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	for _, ns := range namespaces {
		// A process killed just now may hold the namespace for a moment.
		var err error
		for i := 0; i < 20; i++ {
			var out []byte
			if out, err = exec.Command("ip", "netns", "del", ns).CombinedOutput(); err == nil || strings.Contains(string(out), "No such file") {
				err = nil
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("harness: could not delete network namespace %s: %v", ns, err)
		}
		os.RemoveAll(filepath.Join("/etc/netns", ns))
	}
}
