package runner

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/edgeid/edgeid/internal/fakewlapi"
	"github.com/edgeid/edgeid/internal/svidtest"
)

const (
	fleetTD      = "spiffe://fleet.test"
	orchID       = fleetTD + "/cloud/orchestrator"
	hostStatusID = fleetTD + "/host/edge-a/status"
)

// testSource is one fixed SVID and its CA's bundle.
type testSource struct {
	*svidtest.Source
	bundle *x509bundle.Bundle
}

func (s testSource) GetX509BundleForTrustDomain(spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return s.bundle, nil
}

func newSVID(t *testing.T, ca *svidtest.CA, id string) *x509svid.SVID {
	t.Helper()
	s, err := ca.SVID(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startStatusServer serves a fixed Status as hostStatusID to orchID only,
// and counts the requests that reached the handler.
func startStatusServer(t *testing.T, ca *svidtest.CA) (string, *atomic.Int32) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := testSource{svidtest.NewSource(newSVID(t, ca, hostStatusID)), ca.Bundle()}
	var served atomic.Int32
	serveStatus(ctx, ln, statusServerTLS(src, spiffeid.RequireFromString(orchID)), statusHandler(func(context.Context) *Status {
		served.Add(1)
		return &Status{TrustDomain: "fleet.test", Sites: []SiteStatus{{Name: "site-a", Workloads: []WorkloadStatus{{Name: "cam"}}}}, Problems: []string{"helper-cam: not running"}}
	}), t.Logf)
	return ln.Addr().String(), &served
}

// The orchestrator reads a host; a client with any other SVID is refused
// in the handshake and never reaches the handler; a client that expects
// another server ID refuses the host.
func TestStatusEndpointMTLS(t *testing.T) {
	ca, err := svidtest.NewCA("fleet.test")
	if err != nil {
		t.Fatal(err)
	}
	addr, served := startStatusServer(t, ca)
	ctx := context.Background()
	target := FleetHost{Host: "edge-a", Addr: addr, SPIFFEID: hostStatusID}
	client := func(id string) svidSource { return testSource{svidtest.NewSource(newSVID(t, ca, id)), ca.Bundle()} }

	st, err := fetchHostStatus(ctx, client(orchID), target, 5*time.Second)
	if err != nil {
		t.Fatalf("orchestrator refused: %v", err)
	}
	if len(st.Sites) != 1 || st.Sites[0].Workloads[0].Name != "cam" || served.Load() != 1 {
		t.Fatalf("status %+v after %d request(s)", st, served.Load())
	}

	for _, id := range []string{fleetTD + "/cloud/kafka-gateway", fleetTD + "/host/edge-b/status"} {
		if _, err := fetchHostStatus(ctx, client(id), target, 5*time.Second); err == nil {
			t.Fatalf("a client with %s read the status", id)
		} else {
			t.Logf("%s refused: %v", id, err)
		}
	}
	other, err := svidtest.NewCA("fleet.test")
	if err != nil {
		t.Fatal(err)
	}
	forged := testSource{svidtest.NewSource(newSVID(t, other, orchID)), ca.Bundle()}
	if _, err := fetchHostStatus(ctx, forged, target, 5*time.Second); err == nil {
		t.Fatal("an orchestrator ID from another CA read the status")
	}
	wrongServer := target
	wrongServer.SPIFFEID = fleetTD + "/host/edge-b/status"
	if _, err := fetchHostStatus(ctx, client(orchID), wrongServer, 5*time.Second); err == nil || !strings.Contains(err.Error(), "unexpected ID") {
		t.Fatalf("the client accepted a server with another ID: %v", err)
	}
	if n := served.Load(); n != 1 {
		t.Fatalf("the handler served %d requests, want only the orchestrator's 1", n)
	}
}

// A host that does not answer is reported unreachable within the
// timeout, its problems are not lost for the others, and a host without
// an endpoint is noted, not a problem.
func TestQueryFleet(t *testing.T) {
	ca, err := svidtest.NewCA("fleet.test")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := startStatusServer(t, ca)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := closed.Addr().String()
	closed.Close()
	src := testSource{svidtest.NewSource(newSVID(t, ca, orchID)), ca.Bundle()}
	targets := []FleetHost{
		{Host: "edge-a", Addr: addr, SPIFFEID: hostStatusID},
		{Host: "edge-b", Addr: dead, SPIFFEID: fleetTD + "/host/edge-b/status"},
		{Host: "cloud-2", Note: "no status endpoint"},
	}
	start := time.Now()
	hosts := queryFleet(context.Background(), targets, func(ctx context.Context, h FleetHost) (*Status, error) {
		return fetchHostStatus(ctx, src, h, 2*time.Second)
	})
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the fleet took %s", d)
	}
	problems := fleetProblems(hosts)
	want := []string{"host edge-a: helper-cam: not running", "host edge-b: unreachable: "}
	if len(problems) != len(want) {
		t.Fatalf("problems %q, want %q", problems, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(problems[i], w) {
			t.Errorf("problem %d = %q, want %q…", i, problems[i], w)
		}
	}
	var out strings.Builder
	(&Fleet{TrustDomain: "fleet.test", Orchestrator: orchID, Hosts: hosts}).WriteTree(&out)
	for _, w := range []string{"3 host(s), 1 read", "host edge-a " + addr, "workload cam", "host edge-b " + dead + ": UNREACHABLE", "host cloud-2: no status endpoint"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("tree lacks %q:\n%s", w, out.String())
		}
	}
}

// agentSVID serves only the wanted ID: on a cloud host the agent gives
// edgeid both the host's status identity and the orchestrator's, and
// its default may be either.
func TestAgentSVIDPicksItsID(t *testing.T) {
	ca, err := svidtest.NewCA("fleet.test")
	if err != nil {
		t.Fatal(err)
	}
	api := fakewlapi.Start(t)
	orch, status := newSVID(t, ca, orchID), newSVID(t, ca, hostStatusID)
	api.Push([]*x509svid.SVID{orch}, ca.Bundle())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &agentSVID{want: spiffeid.RequireFromString(hostStatusID)}
	if _, err := a.GetX509SVID(); err == nil {
		t.Fatal("an SVID before the agent answered")
	}
	done := make(chan struct{})
	go func() { defer close(done); a.watch(ctx, api.Addr, 5*time.Second, t.Logf) }()
	waitFor(t, func() bool { return a.src.Load() != nil })
	if s, err := a.GetX509SVID(); err == nil {
		t.Fatalf("served %s while the agent offered only the orchestrator's", s.ID)
	}
	api.Push([]*x509svid.SVID{orch, status}, ca.Bundle())
	waitFor(t, func() bool { s, err := a.GetX509SVID(); return err == nil && s.ID.String() == hostStatusID })
	cancel()
	<-done
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
