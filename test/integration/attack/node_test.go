package attack

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Node attestation attacks: a KubeEdge node that was decommissioned keeps
// its certificate (365 days) and key, and its SPIRE agent keeps running.
// The kubeedge plugin returns CanReattest, so a SPIRE 1.13.3 agent renews
// its SVID by attesting again (at about half of agent_ttl); each renewal
// runs the Node check and the deny lists again. These tests show the
// decommissioned node cut off at its next renewal, against a real
// kube-apiserver, a real SPIRE server and agent and the real plugins — and
// the same attack succeeding once the protection is off.

// cutOffAtRenewal runs an agent, lets it renew once with every check
// passing, then runs attack and checks that the next renewal is refused
// with want (the plugin's reason, in the server log), that the agent gets
// no new SVID, and that it exits when its current SVID expires, taking its
// Workload API with it. It logs what it measured.
func cutOffAtRenewal(t *testing.T, e *nodeEnv, n *edgeNode, agentTTL time.Duration, attack func(), want string) {
	t.Helper()
	wl, wlNotAfter := e.workload(n)
	e.waitEvents(n, "a renewal by re-attestation before the attack", 2*agentTTL, func(_, agent []logEvent) error {
		if count(agent, evReattested) < 1 {
			return errors.New("the agent has not re-attested yet")
		}
		return nil
	})

	attack()
	attackedAt := time.Now()
	// An attestation that had passed its checks before the attack may
	// still be finishing; give it a second, then count from here.
	time.Sleep(time.Second)
	baseServer, baseAgent := e.events(n)
	before := e.agentRecord(n)

	server, _ := e.waitEvents(n, "the first renewal after the attack refused", agentTTL+30*time.Second, func(server, _ []logEvent) error {
		for _, ev := range server[len(baseServer):] {
			if ev.Kind == evRefused {
				return nil
			}
		}
		return errors.New("no refusal yet")
	})
	refusedAt := time.Now()
	var first logEvent
	for _, ev := range server[len(baseServer):] {
		if ev.Kind == evRefused {
			first = ev
			break
		}
	}
	if first.Detail != want {
		t.Fatalf("the renewal was refused with %q, want %q", first.Detail, want)
	}

	// The agent keeps its current SVID and retries until it expires, then
	// exits: a cut-off agent loses its identity within agent_ttl.
	select {
	case <-n.agent.Proc.Done():
	case <-time.After(agentTTL + 60*time.Second):
		server, agent := e.events(n)
		logEvents(t, "after the attack", server, agent)
		t.Fatalf("the agent still runs %s after the attack", time.Since(attackedAt).Round(time.Second))
	}
	exitedAt := time.Now()
	server, agent := e.events(n)
	logEvents(t, "the whole run", server, agent)

	if got := count(server, evAttested) - count(baseServer, evAttested); got != 0 {
		t.Errorf("the server completed %d attestations of the agent after the attack, want 0", got)
	}
	if got := count(server, evRefused) - count(baseServer, evRefused); got < 1 {
		t.Errorf("%d refusals after the attack, want at least 1", got)
	}
	if got := count(agent, evReattestFailed) - count(baseAgent, evReattestFailed); got < 1 {
		t.Errorf("the agent logged %d failed renewals after the attack, want at least 1", got)
	}
	if got := count(agent, evReattested) - count(baseAgent, evReattested); got != 0 {
		t.Errorf("the agent logged %d successful renewals after the attack, want 0", got)
	}
	if after := e.agentRecord(n); after.SerialNumber != before.SerialNumber {
		t.Errorf("the agent got a new SVID after the attack: serial %s -> %s", before.SerialNumber, after.SerialNumber)
	}
	// SPIRE 1.13.3 has two ways out, whichever notices the expiry first:
	// the entry sync (the server refuses the expired SVID, the agent tries
	// one last re-attestation, deletes its SVID and exits) or the rotator.
	exitPath := ""
	for _, f := range readLogFields(n.agent.Proc.Log()) {
		switch {
		case f["msg"] == "Agent failed re-attestation; removing SVID and shutting down":
			exitPath = "entry sync: " + f["msg"]
		case strings.Contains(f["error"], "current SVID has already expired and reattest agent failed"):
			exitPath = "rotator: " + f["error"]
		}
	}
	if exitPath == "" {
		t.Errorf("the agent exited without either of SPIRE's expiry messages; its log:\n%s", n.agent.Proc.Log())
	}
	svidExpiry := time.Unix(before.ExpiresAt, 0)
	if exitedAt.Before(svidExpiry.Add(-time.Second)) {
		t.Errorf("the agent exited at %s, before its SVID expired at %s", exitedAt.Format(time.RFC3339), svidExpiry.Format(time.RFC3339))
	}
	if err := workloadAPIServes(n, wl); err == nil {
		t.Error("the Workload API still serves the workload after the agent was cut off")
	}
	t.Logf("the agent exited through the %s", exitPath)
	t.Logf("measured: attack -> first refused renewal %s; attack -> agent exit %s; agent exit %s after its SVID expired (%s); "+
		"the workload's last SVID stays valid until %s (%s after the exit): SPIRE does not revoke issued SVIDs",
		refusedAt.Sub(attackedAt).Round(100*time.Millisecond), exitedAt.Sub(attackedAt).Round(100*time.Millisecond),
		exitedAt.Sub(svidExpiry).Round(100*time.Millisecond), svidExpiry.Format(time.RFC3339),
		wlNotAfter.Format(time.RFC3339), wlNotAfter.Sub(exitedAt).Round(time.Second))
}

// TestNodeDeletedIsCutOffAtRenewal: the Node of a running agent is deleted;
// its next renewal is refused with the API server's 404, and the agent
// loses its identity.
func TestNodeDeletedIsCutOffAtRenewal(t *testing.T) {
	const agentTTL = 30 * time.Second
	e := newNodeEnv(t, nodeEnvOptions{AgentTTL: agentTTL})
	n := e.join("edge-gone-1")
	cutOffAtRenewal(t, e, n, agentTTL, func() { e.kube.DeleteNode(t, n.name) },
		fmt.Sprintf("kubernetes node %q does not exist", n.name))
}

// TestNodeDeniedByFileIsCutOffAtRenewal: a running agent's node is added to
// deny_list_file, with no restart; its next renewal is refused.
func TestNodeDeniedByFileIsCutOffAtRenewal(t *testing.T) {
	const agentTTL = 30 * time.Second
	e := newNodeEnv(t, nodeEnvOptions{AgentTTL: agentTTL})
	n := e.join("edge-denied-1")
	cutOffAtRenewal(t, e, n, agentTTL, func() { e.writeDenyList("# lost on the road\nnode EDGE-DENIED-1\n") },
		fmt.Sprintf("node %q is on the deny list (deny_list_file line 2)", n.name))
}

// TestNodeCheckOutageGraceIsBounded: the API server goes down while an
// agent runs with the Node check on. The agent keeps renewing on its
// node's last good check for node_check_max_staleness, is refused after
// it, and attests again once the API server is back.
func TestNodeCheckOutageGraceIsBounded(t *testing.T) {
	// Renewals come about every 25-33 s with a 60 s agent_ttl: the first
	// renewal in the outage falls inside the 40 s bound and the second
	// outside it, and the agent's SVID still has 25 s or more to live when
	// it is refused, time for the API server to come back.
	const (
		agentTTL = 60 * time.Second
		maxStale = 40 * time.Second
	)
	e := newNodeEnv(t, nodeEnvOptions{AgentTTL: agentTTL, MaxStaleness: maxStale.String()})
	n := e.join("edge-outage-1")
	wl, _ := e.workload(n)

	// A renewal that passed a real Node check; the API server goes down
	// right after it.
	e.waitEvents(n, "a renewal by re-attestation with the API server up", 2*agentTTL, func(_, agent []logEvent) error {
		if count(agent, evReattested) < 1 {
			return errors.New("the agent has not re-attested yet")
		}
		return nil
	})
	lastGood := time.Now() // at most one poll (100 ms) after that check
	e.kube.Stop(t)
	base, _ := e.events(n)

	// Within the bound: a renewal on the last good check.
	e.waitEvents(n, "a renewal on the last good check during the outage", maxStale, func(server, _ []logEvent) error {
		for i, ev := range server[len(base):] {
			if ev.Kind == evGrace && len(server) > len(base)+i+1 && server[len(base)+i+1].Kind == evAttested {
				return nil
			}
		}
		return errors.New("no renewal on the last good check yet")
	})
	graceAt := time.Now()

	// After the bound: refused, fail closed.
	wantSuffix := fmt.Sprintf("is older than node_check_max_staleness %s", maxStale)
	server, _ := e.waitEvents(n, "a renewal refused after node_check_max_staleness", agentTTL, func(server, _ []logEvent) error {
		for _, ev := range server[len(base):] {
			if ev.Kind == evRefused && strings.HasSuffix(ev.Detail, wantSuffix) {
				return nil
			}
		}
		return errors.New("no refusal yet")
	})
	refusedAt := time.Now()
	refusedIdx := len(server)
	if refusedAt.Sub(lastGood) < maxStale-time.Second {
		t.Errorf("refused %s after the last good check, before node_check_max_staleness %s", refusedAt.Sub(lastGood).Round(100*time.Millisecond), maxStale)
	}

	// The API server comes back: the same agent, still holding an SVID,
	// renews with a real Node check.
	e.kube.Start(t)
	backAt := time.Now()
	server, agent := e.waitEvents(n, "a renewal after the API server came back", agentTTL, func(server, _ []logEvent) error {
		for _, ev := range server[refusedIdx:] {
			if ev.Kind == evAttested {
				return nil
			}
		}
		return errors.New("no attestation since the API server came back")
	})
	logEvents(t, "the whole run", server, agent)

	var graces, refusals, after int
	for i, ev := range server[len(base):] {
		switch ev.Kind {
		case evGrace:
			graces++
			age, err := time.ParseDuration(ev.Fields["age"])
			if err != nil || age > maxStale {
				t.Errorf("event %d: attested on a check %q old, over %s", len(base)+i, ev.Fields["age"], maxStale)
			}
		case evRefused:
			refusals++
			if !strings.HasSuffix(ev.Detail, wantSuffix) && !strings.Contains(ev.Detail, "connection refused") {
				t.Errorf("event %d: refused for %q", len(base)+i, ev.Detail)
			}
		}
	}
	for _, ev := range server[refusedIdx:] {
		if ev.Kind == evGrace {
			t.Errorf("a renewal used the last good check after the bound: %v", ev)
		}
		if ev.Kind == evAttested {
			after++
		}
	}
	if graces < 1 || refusals < 1 || after < 1 {
		t.Errorf("%d renewals on the last good check, %d refusals, %d attestations after the API server came back; want at least 1 of each", graces, refusals, after)
	}
	if exited, err := n.agent.Proc.Exited(); exited {
		t.Fatalf("the agent exited: %v", err)
	}
	if err := workloadAPIServes(n, wl); err != nil {
		t.Errorf("the Workload API no longer serves after the outage: %v", err)
	}
	t.Logf("measured: API server down -> renewal on the last good check %s; last good check -> refusal %s; API server back -> renewal %s",
		graceAt.Sub(lastGood).Round(100*time.Millisecond), refusedAt.Sub(lastGood).Round(100*time.Millisecond), time.Since(backAt).Round(100*time.Millisecond))
}

// TestNodeDeletedKeepsAttestingWithoutTheCheck is the control: with
// kubernetes_check = "disabled", the deleted Node's agent keeps renewing
// and serving, so the attack succeeds without the protection.
func TestNodeDeletedKeepsAttestingWithoutTheCheck(t *testing.T) {
	const agentTTL = 30 * time.Second
	e := newNodeEnv(t, nodeEnvOptions{AgentTTL: agentTTL, KubernetesCheck: "disabled"})
	n := e.join("edge-gone-2")
	wl, _ := e.workload(n)

	e.kube.DeleteNode(t, n.name)
	time.Sleep(time.Second)
	base, baseAgent := e.events(n)
	server, agent := e.waitEvents(n, "two renewals after the Node was deleted", 3*agentTTL, func(server, _ []logEvent) error {
		if got := count(server, evAttested) - count(base, evAttested); got < 2 {
			return fmt.Errorf("%d renewals since the deletion", got)
		}
		return nil
	})
	logEvents(t, "the whole run", server, agent)
	if got := count(server, evRefused); got != 0 {
		t.Errorf("%d refusals without the Node check, want 0", got)
	}
	if got := count(agent, evReattested) - count(baseAgent, evReattested); got < 2 {
		t.Errorf("the agent logged %d renewals after the deletion, want at least 2", got)
	}
	if err := workloadAPIServes(n, wl); err != nil {
		t.Errorf("the Workload API stopped serving: %v", err)
	}
	t.Logf("without the Node check, the agent of deleted Node %s renewed %d times after the deletion and still serves: the attack succeeds",
		n.name, count(server, evAttested)-count(base, evAttested))
}
