package runner

import (
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	uid := func(u int) *int { return &u }
	healthy := func() *Status {
		return &Status{
			Processes: []ProcessStatus{
				{Name: "edge/spire-agent", PID: 10, Running: true, UID: uid(61000), WantUID: 61000, Health: "ready"},
				{Name: "edge/helper-cam", PID: 11, Running: true, UID: uid(61100), WantUID: 61100, Health: "ready"},
			},
			Cloud: []ServerStatus{{Host: "cloud", Running: true, Healthy: true, CAIssued: at(-time.Hour), CAExpires: at(23 * time.Hour)}},
			Sites: []SiteStatus{{Name: "a", Server: ServerStatus{Host: "edge", Running: true, Healthy: true, CAIssued: at(-time.Hour), CAExpires: at(time.Hour)},
				Workloads: []WorkloadStatus{{SPIFFEID: "spiffe://td/w", Running: true, SVIDIssued: at(-time.Minute), SVIDExpires: at(4 * time.Minute)}}}},
		}
	}
	r := &Runner{}
	if p := r.Check(healthy(), now); len(p) != 0 {
		t.Fatalf("a healthy run has problems: %v", p)
	}
	for _, tc := range []struct {
		name   string
		break_ func(*Status)
		want   string
	}{
		{"agent killed", func(s *Status) { s.Processes[0].Running, s.Processes[0].PID, s.Processes[0].UID = false, 0, nil }, "edge/spire-agent: not running"},
		{"wrong uid", func(s *Status) { s.Processes[1].UID = uid(0) }, "edge/helper-cam: runs as uid 0, want 61100"},
		{"not ready", func(s *Status) { s.Processes[1].Health = "not ready: HTTP 503" }, "edge/helper-cam: not ready: HTTP 503"},
		{"server unhealthy", func(s *Status) { s.Cloud[0].Healthy, s.Cloud[0].Error = false, "healthcheck failed" }, "server cloud: unhealthy: healthcheck failed"},
		{"edge CA not rotated", func(s *Status) {
			s.Sites[0].Server.CAIssued, s.Sites[0].Server.CAExpires = at(-110*time.Minute), at(10*time.Minute)
		}, "server edge: CA expires in 10m0s of its 2h0m0s"},
		{"SVID expired", func(s *Status) { s.Sites[0].Workloads[0].SVIDExpires = at(-time.Second) }, "workload spiffe://td/w: SVID expired"},
		{"SVID not rotated", func(s *Status) {
			s.Sites[0].Workloads[0].SVIDIssued, s.Sites[0].Workloads[0].SVIDExpires = at(-290*time.Second), at(10*time.Second)
		}, "workload spiffe://td/w: SVID expires in 10s"},
	} {
		st := healthy()
		tc.break_(st)
		p := r.Check(st, now)
		if len(p) != 1 || !strings.Contains(p[0], tc.want) {
			t.Errorf("%s: problems %q, want one with %q", tc.name, p, tc.want)
		}
	}
}
