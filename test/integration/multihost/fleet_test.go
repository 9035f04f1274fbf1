package multihost

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/runner"
	"github.com/edgeid/edgeid/orchestrator/topology"
	"github.com/edgeid/edgeid/test/harness"
)

// statusFleet runs `edgeid status --fleet args...` on cloud-1, as the
// operator would there, and returns its output and exit error.
func (d *deployment) statusFleet(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	argv := append([]string{"status", "--fleet", "-f", d.topo, "--host", "cloud-1", "--root", d.root("cloud-1"), "--bin-dir", d.bin}, args...)
	cmd := d.net.Command(ctx, "cloud-1", filepath.Join(d.bin, "edgeid"), argv...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.root("cloud-1")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// checkFleetStatus reads every host's status endpoint from cloud-1 with
// the orchestrator's SVID and checks that each host with an agent reports
// its services (edge hosts: their site, edge server and workload), that
// a host cut off the network is reported unreachable with a non-zero
// --check, and that a client with another SVID of the trust domain is
// refused by a host's endpoint.
func (d *deployment) checkFleetStatus(sites map[string]string) {
	t := d.t
	t.Helper()
	t.Log("---- edgeid status --fleet on cloud-1 ----")
	start := time.Now()
	// Each supervisor serves once its agent has issued its identity.
	harness.Eventually(t, 90*time.Second, func() error {
		out, err := d.statusFleet("-o", "json")
		if err != nil {
			return fmt.Errorf("status --fleet: %v\n%s", err, out)
		}
		var f runner.Fleet
		if err := json.Unmarshal([]byte(out), &f); err != nil {
			return fmt.Errorf("status --fleet -o json: %v\n%s", err, out)
		}
		return fleetHasEveryHost(&f, sites)
	})
	out, _ := d.statusFleet()
	t.Logf("edgeid status --fleet on cloud-1:\n%s", out)

	d.net.Cut(t, "edge-b")
	cutAt := time.Now()
	out, err := d.statusFleet("--check", "--timeout", "2s")
	d.net.Mend(t, "edge-b")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "host edge-b: unreachable") {
		t.Fatalf("status --fleet --check with edge-b cut off: %v, want exit 1 naming edge-b unreachable:\n%s", err, out)
	}
	if strings.Contains(out, "host edge-a: unreachable") || strings.Contains(out, "host cloud-1: unreachable") {
		t.Fatalf("status --fleet --check with only edge-b cut off names another host unreachable:\n%s", out)
	}
	t.Logf("with edge-b cut off (%s): exit 1:\n%s", time.Since(cutAt).Round(time.Millisecond), out)

	d.requireIntruderRefused("edge-a")
	t.Logf("fleet status checks took %s", time.Since(start).Round(time.Millisecond))
}

// fleetHasEveryHost checks f: cloud-1 with the broker, each edge host
// with its site's edge server and running workload, cloud-2 (no agent)
// without an endpoint.
func fleetHasEveryHost(f *runner.Fleet, sites map[string]string) error {
	byHost := map[string]runner.FleetHost{}
	for _, h := range f.Hosts {
		byHost[h.Host] = h
	}
	if h := byHost["cloud-2"]; h.Addr != "" || h.Note == "" {
		return fmt.Errorf("cloud-2 (no agent) reported as %+v", h)
	}
	for _, name := range []string{"cloud-1", "edge-a", "edge-b"} {
		h := byHost[name]
		if h.Status == nil {
			return fmt.Errorf("host %s not read: %s", name, h.Error)
		}
		if h.SPIFFEID != td+"/host/"+name+"/status" || len(h.Status.Processes) == 0 {
			return fmt.Errorf("host %s: ID %s, %d process(es)", name, h.SPIFFEID, len(h.Status.Processes))
		}
	}
	if k := byHost["cloud-1"].Status.Kafka; k == nil || !k.Running {
		return fmt.Errorf("cloud-1 does not report its running Kafka broker")
	}
	for host, site := range sites {
		st := byHost[host].Status
		if len(st.Sites) != 1 || st.Sites[0].Name != site || !st.Sites[0].Server.Healthy {
			return fmt.Errorf("host %s: sites %+v, want %s with a healthy edge server", host, st.Sites, site)
		}
		if w := st.Sites[0].Workloads; len(w) != 1 || w[0].Name != "deepstream/cam" || !w[0].Running || w[0].Serial == "" {
			return fmt.Errorf("host %s: workloads %+v, want deepstream/cam running with an SVID", host, w)
		}
	}
	return nil
}

// requireIntruderRefused gets another SVID of the trust domain from
// cloud-1's agent (registered for this test program) and checks that
// host's status endpoint refuses it: the TLS connection fails and no
// HTTP response comes back.
func (d *deployment) requireIntruderRefused(host string) {
	t := d.t
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	id := td + "/cloud/fleet-intruder"
	if out, err := d.spireServer("cloud-1", "entry", "create", "-parentID", td+"/cloud/agent/cloud-1", "-spiffeID", id,
		"-selector", "unix:uid:0", "-selector", "unix:path:"+exe, "-x509SVIDTTL", "300"); err != nil {
		t.Fatalf("register %s: %v\n%s", id, err, out)
	}
	svid, roots := harness.FetchX509SVIDFor(t, filepath.Join(d.root("cloud-1"), render.PublicSocketDir, "agent.sock"), id)
	bundle := x509bundle.FromX509Authorities(svid.ID.TrustDomain(), roots)
	conn, err := d.net.Dial("cloud-1", fmt.Sprintf("%s:%d", d.net.Hosts[host].IP, topology.DefaultStatusPort))
	if err != nil {
		t.Fatalf("dial %s's status endpoint from cloud-1: %v", host, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	cfg := tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(spiffeid.RequireFromString(td+"/host/"+host+"/status")))
	tc := tls.Client(conn, cfg)
	_, err = fmt.Fprintf(tc, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", runner.StatusPath, host)
	if err == nil {
		var resp *http.Response
		resp, err = http.ReadResponse(bufio.NewReader(tc), nil)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s's status endpoint answered %s with HTTP %d", host, id, resp.StatusCode)
		}
	}
	if !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("%s's status endpoint with %s: %v, want a TLS refusal (bad certificate)", host, id, err)
	}
	t.Logf("%s's status endpoint refused %s: %v", host, id, err)
}
