package svidsource

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/edgeid/edgeid/internal/fakewlapi"
	"github.com/edgeid/edgeid/internal/svidtest"
)

// The source holds the wanted ID's SVID (not the agent's default), follows
// every push, and serves readers while it is updated (run with -race).
func TestSourcePicksFollowsAndIsRaceFree(t *testing.T) {
	ca, err := svidtest.NewCA("example.org")
	if err != nil {
		t.Fatal(err)
	}
	svid := func(id string) *x509svid.SVID {
		s, err := ca.SVID(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	api := fakewlapi.Start(t)
	other, gw := svid("spiffe://example.org/other"), svid("spiffe://example.org/gateway")
	api.Push([]*x509svid.SVID{other, gw}, ca.Bundle())
	src, err := New(context.Background(), api.Addr, spiffeid.RequireFromString("spiffe://example.org/gateway"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got, err := src.GetX509SVID()
	if err != nil || got.ID.String() != "spiffe://example.org/gateway" {
		t.Fatalf("SVID %v %v, want the gateway's, not the default", got, err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = src.GetX509SVID()
				_, _ = src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("example.org"))
			}
		}()
	}
	next := svid("spiffe://example.org/gateway")
	api.Push([]*x509svid.SVID{other, next}, ca.Bundle())
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s, _ := src.GetX509SVID(); s.Certificates[0].SerialNumber.Cmp(next.Certificates[0].SerialNumber) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the source did not follow the push")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if b, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("example.org")); err != nil || len(b.X509Authorities()) == 0 {
		t.Fatalf("bundle: %v", err)
	}
}

func TestNewFailsWithoutAnAgent(t *testing.T) {
	if _, err := New(context.Background(), "unix:///nonexistent/agent.sock", spiffeid.ID{}, 500*time.Millisecond); err == nil {
		t.Fatal("New succeeded without an agent")
	}
}
