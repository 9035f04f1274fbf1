package orchestrator

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/edgeid/edgeid/orchestrator/runner"
	"github.com/edgeid/edgeid/test/harness"
)

// requireFleetStatus runs `edgeid status --fleet` over an embedded run
// whose supervisor serves every host's status endpoint (each with its own
// host's agent SVID, on loopback) and checks that every host is read with
// the orchestrator's SVID and reports its services.
func requireFleetStatus(t *testing.T, bin string, common []string) {
	t.Helper()
	start := time.Now()
	var f runner.Fleet
	harness.Eventually(t, 90*time.Second, func() error {
		out, err := edgeid(t, bin, time.Minute, append([]string{"status", "--fleet", "-o", "json"}, common...)...)
		if err != nil {
			return fmt.Errorf("status --fleet: %v\n%s", err, out)
		}
		f = runner.Fleet{}
		if err := json.Unmarshal([]byte(out), &f); err != nil {
			return fmt.Errorf("status --fleet -o json: %v\n%s", err, out)
		}
		if len(f.Hosts) != 3 {
			return fmt.Errorf("%d host(s), want cloud, edge-a-1, edge-b-1", len(f.Hosts))
		}
		for _, h := range f.Hosts {
			if h.Status == nil {
				return fmt.Errorf("host %s not read: %s", h.Host, h.Error)
			}
			if h.Host == "cloud" {
				if h.Status.Kafka == nil || len(h.Status.Cloud) != 1 {
					return fmt.Errorf("cloud reports no broker or cloud server")
				}
				continue
			}
			if len(h.Status.Sites) != 1 || len(h.Status.Sites[0].Workloads) == 0 || !h.Status.Sites[0].Workloads[0].Running {
				return fmt.Errorf("host %s: sites %+v, want its site with a running workload", h.Host, h.Status.Sites)
			}
			for _, p := range h.Status.Processes {
				if len(p.Name) < len(h.Host) || p.Name[:len(h.Host)] != h.Host {
					return fmt.Errorf("host %s reports another host's process %s", h.Host, p.Name)
				}
			}
		}
		return nil
	})
	t.Logf("status --fleet read %d hosts as %s within %s", len(f.Hosts), f.Orchestrator, time.Since(start).Round(time.Millisecond))
}
