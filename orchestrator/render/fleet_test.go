package render

import (
	"slices"
	"strings"
	"testing"
)

// Every host with a Workload API agent gets a status endpoint on loopback
// (fleet_status off) and an entry for the supervisor's identity on its
// own agent, pinned to root and the edgeid binary; the cloud host's agent
// also issues the orchestrator's identity, and no other agent does.
func TestStatusEndpoints(t *testing.T) {
	plan := samplePlan(t)
	td := plan.TrustDomain
	selectors := []string{"unix:uid:0", "unix:path:/opt/edgeid/bin/edgeid"}
	for _, h := range plan.Hosts {
		if h.Status == nil {
			t.Fatalf("host %s has no status endpoint", h.Name)
		}
		if h.Status.Listen != "127.0.0.1:9097" || h.Status.ID != StatusID(td, h.Name) {
			t.Errorf("host %s: endpoint %+v, want 127.0.0.1:9097 as %s", h.Name, h.Status, StatusID(td, h.Name))
		}
		agent := workloadAgent(h)
		i := slices.IndexFunc(plan.Entries, func(e Entry) bool { return e.SPIFFEID == h.Status.ID })
		if i < 0 {
			t.Fatalf("no entry for %s", h.Status.ID)
		}
		e := plan.Entries[i]
		if e.ParentID != agent.AgentID || e.Server != agent.Server || !slices.Equal(e.Selectors, selectors) {
			t.Errorf("entry of %s: parent %s server %s selectors %v; want %s, %s, %v", e.SPIFFEID, e.ParentID, e.Server, e.Selectors, agent.AgentID, agent.Server, selectors)
		}
	}
	var orch []Entry
	for _, e := range plan.Entries {
		if e.SPIFFEID == OrchestratorID(td) {
			orch = append(orch, e)
		}
	}
	if len(orch) != 1 || orch[0].ParentID != CloudID(td, "agent/cloud") || !slices.Equal(orch[0].Selectors, selectors) {
		t.Fatalf("orchestrator entries %+v, want one on the cloud agent", orch)
	}
	if plan.Orchestrator == nil || plan.Orchestrator.Host != "cloud" || !strings.HasSuffix(plan.Orchestrator.Socket, "run/public/agent.sock") {
		t.Fatalf("orchestrator = %+v", plan.Orchestrator)
	}
}

// With fleet_status on, each endpoint listens on its host's address, on
// status_port.
func TestStatusEndpointsFleetWide(t *testing.T) {
	top := sampleTopology(t)
	top.Observability.FleetStatus = true
	top.Observability.StatusPort = 9444
	env := testEnv(top)
	env.OrchestratorAccount = Account{UID: 1000, GID: 1000}
	env.OrchestratorExe = "/usr/local/bin/edgeid"
	plan, err := Build(top, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range plan.Hosts {
		if want := h.Addr + ":9444"; h.Status.Listen != want || h.Status.Addr != want {
			t.Errorf("host %s: endpoint %+v, want %s", h.Name, h.Status, want)
		}
	}
	for _, e := range plan.Entries {
		if e.Workload == "orchestrator" || e.Workload == "edgeid-status" {
			if !slices.Equal(e.Selectors, []string{"unix:uid:1000", "unix:path:/usr/local/bin/edgeid"}) {
				t.Errorf("entry %s selectors %v", e.SPIFFEID, e.Selectors)
			}
		}
	}
}
