package deepstreambench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/edgeid/edgeid/plugins/agent/workloadattestor/deepstream"
	"github.com/edgeid/edgeid/test/harness"
)

// swappable serves Attest from whichever plugin is current, so cold runs
// can start every call with a fresh, empty hash cache.
type swappable struct {
	workloadattestorv1.UnimplementedWorkloadAttestorServer
	cur atomic.Pointer[deepstream.Plugin]
}

func (s *swappable) Attest(ctx context.Context, req *workloadattestorv1.AttestRequest) (*workloadattestorv1.AttestResponse, error) {
	return s.cur.Load().Attest(ctx, req)
}

func newPlugin(b *testing.B) *deepstream.Plugin {
	p := deepstream.New()
	if _, err := p.Configure(context.Background(), &configv1.ConfigureRequest{HclConfiguration: ""}); err != nil {
		b.Fatal(err)
	}
	return p
}

// serve starts a gRPC server on a unix socket, the transport SPIRE uses for
// external plugins, and returns a client.
func serve(b *testing.B, srv *swappable) workloadattestorv1.WorkloadAttestorClient {
	sock := filepath.Join(harness.ShortTempDir(b), "plugin.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	workloadattestorv1.RegisterWorkloadAttestorServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return workloadattestorv1.NewWorkloadAttestorClient(conn)
}

// startApps starts the stand-in with a test5 config, and a shell that has
// the stand-in as its child (the helper case). It returns both pids.
func startApps(b *testing.B) (app, helper int) {
	standin := harness.BuildBinary(b, "./test/standin/deepstream-test5-app", "deepstream-test5-app").Path
	cfg := filepath.Join(harness.RepoRoot(b), "plugins/agent/workloadattestor/deepstream/testdata/test5_kafka.txt")
	start := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		// Its own process group, so that cleanup also kills the shell's child.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
		return cmd
	}
	app = start(standin, "-c", cfg).Process.Pid
	// `; :` keeps sh from exec'ing the app, so the app is sh's child.
	helper = start("sh", "-c", fmt.Sprintf("%q -c %q; :", standin, cfg)).Process.Pid
	return app, helper
}

func attestOnce(b *testing.B, c workloadattestorv1.WorkloadAttestorClient, pid int) time.Duration {
	start := time.Now()
	resp, err := c.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: int32(pid)})
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	// Both apps run unheld, so their config selectors are self-reported.
	if !slices.Contains(resp.SelectorValues, "self_reported:publish_topic:detections") {
		b.Fatalf("pid %d: unexpected selectors %q", pid, resp.SelectorValues)
	}
	return d
}

func report(b *testing.B, name string, d []time.Duration) time.Duration {
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	b.ReportMetric(float64(q(0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(q(0.99).Microseconds()), "p99-µs")
	b.Logf("%-28s n=%-5d p50=%-10v p90=%-10v p99=%-10v max=%v", name, len(d), q(0.5), q(0.9), q(0.99), d[len(d)-1])
	return q(0.5)
}

// waitChild waits until the helper shell has forked the app.
func waitChild(b *testing.B, c workloadattestorv1.WorkloadAttestorClient, helper int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: int32(helper)})
		if err == nil && len(resp.SelectorValues) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatal("helper's child never showed up")
}

func BenchmarkAttestCached(b *testing.B) {
	app, helper := startApps(b)
	srv := &swappable{}
	srv.cur.Store(newPlugin(b))
	c := serve(b, srv)
	waitChild(b, c, helper)
	for _, tc := range []struct {
		name string
		pid  int
	}{{"direct", app}, {"helper-child", helper}} {
		b.Run(tc.name, func(b *testing.B) {
			attestOnce(b, c, tc.pid) // fill the cache
			d := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d = append(d, attestOnce(b, c, tc.pid))
			}
			b.StopTimer()
			// The target is a cached p50 under 1 ms; the figure is
			// printed, not asserted (a benchmark measures, it does not
			// pass or fail on timing).
			if p50 := report(b, "cached "+tc.name, d); p50 > time.Millisecond {
				fmt.Printf("note: cached %s p50 %v is over the 1 ms target\n", tc.name, p50)
			}
		})
	}
}

func BenchmarkAttestCold(b *testing.B) {
	app, helper := startApps(b)
	srv := &swappable{}
	srv.cur.Store(newPlugin(b))
	c := serve(b, srv)
	waitChild(b, c, helper)
	for _, tc := range []struct {
		name string
		pid  int
	}{{"direct", app}, {"helper-child", helper}} {
		b.Run(tc.name, func(b *testing.B) {
			d := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				srv.cur.Store(newPlugin(b)) // empty hash cache
				b.StartTimer()
				d = append(d, attestOnce(b, c, tc.pid))
			}
			b.StopTimer()
			report(b, "cold "+tc.name, d)
		})
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
