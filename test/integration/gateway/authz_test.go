package gateway

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestKcatAuthorizationBySPIFFEID: pipeline A writes its own topic and is
// refused on site B's with the topic authorization error; its metadata
// lists only what it may describe; a consumer without READ on its group
// gets the group authorization error.
func TestKcatAuthorizationBySPIFFEID(t *testing.T) {
	e := start(t)
	pipeA := e.kcatArgs(idPipeA)
	t.Logf("attempt: a-ok to %s/0", topicA)
	if _, stderr, err := e.run(30*time.Second, "a-ok\n", append(pipeA, "-P", "-t", topicA, "-p", "0")...); err != nil || strings.Contains(stderr, "ERROR") {
		t.Fatalf("allowed produce: %v\n%s", err, stderr)
	}
	t.Logf("attempt: a-denied to %s/0", topicB)
	_, stderr, err := e.run(30*time.Second, "a-denied\n", append(pipeA, "-P", "-t", topicB, "-p", "0")...)
	if err == nil && !strings.Contains(stderr, "uthorization") {
		t.Fatalf("pipeline A wrote to %s: %s", topicB, stderr)
	}
	if !strings.Contains(stderr, "Topic authorization failed") {
		t.Fatalf("kcat did not report the topic authorization error:\n%s", stderr)
	}
	if n := e.endOffsets(topicB)[0]; n != 0 {
		t.Fatalf("%s holds %d messages", topicB, n)
	}
	out, stderr, err := e.run(30*time.Second, "", append(e.kcatArgs(idPipeB), "-L")...)
	if err != nil {
		t.Fatalf("kcat -L: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, `topic "`+topicB+`"`) || strings.Contains(out, topicA) || strings.Contains(out, e.cluster.ListenAddrs()[0]) {
		t.Fatalf("pipeline B's metadata:\n%s", out)
	}
	t.Log("attempt: consumer without group READ joins cloud-nogroup")
	out, stderr, _ = e.run(20*time.Second, "", append(e.kcatArgs(idNoGrp), "-G", "cloud-nogroup", "-c", "1", topicA)...)
	t.Logf("no-group consumer: %s\n%s", out, stderr)
	if !strings.Contains(stderr, "Group authorization failed") && !strings.Contains(stderr, "Topic authorization failed") {
		t.Fatalf("consumer without READ on its group:\n%s", stderr)
	}
}

// TestKcatAllowIfNoACLAndReload: a topic no rule covers is writable while
// allow_if_no_acl = true; after the policy file is changed to
// allow_if_no_acl = false and reloaded, kcat is refused with the topic
// authorization error. (TestLibrdkafkaReloadOnOpenConnection shows the
// reload reaching a connection that stays open.)
func TestKcatAllowIfNoACLAndReload(t *testing.T) {
	e := start(t)
	pipeA := e.kcatArgs(idPipeA)
	t.Log("attempt: u-1 (allow_if_no_acl = true)")
	if _, stderr, err := e.run(30*time.Second, "u-1\n", append(pipeA, "-P", "-t", topicU, "-p", "0")...); err != nil || strings.Contains(stderr, "ERROR") {
		t.Fatalf("uncovered topic with allow_if_no_acl = true: %v\n%s", err, stderr)
	}
	if n := e.endOffsets(topicU)[0]; n != 1 {
		t.Fatalf("%s/0 holds %d messages", topicU, n)
	}
	denyAll := strings.Replace(seedPolicy, "allow_if_no_acl = true", "allow_if_no_acl = false", 1)
	if err := os.WriteFile(policyPath(e), []byte(denyAll), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	t.Log("attempt: u-2 (after reload, allow_if_no_acl = false)")
	_, stderr, _ := e.run(30*time.Second, "u-2\n", append(pipeA, "-P", "-t", topicU, "-p", "0")...)
	if !strings.Contains(stderr, "Topic authorization failed") {
		t.Fatalf("uncovered topic after reload:\n%s", stderr)
	}
	if n := e.endOffsets(topicU)[0]; n != 1 {
		t.Fatalf("%s/0 holds %d messages after the reload", topicU, n)
	}
}

func policyPath(e *env) string { return e.dir + "/policy.hcl" }

// TestLibrdkafkaReloadOnOpenConnection: one long-running librdkafka
// producer (kcat cannot stream, see startProducer) writes to a topic no
// rule covers, on one partition, so one broker connection. A reload to
// allow_if_no_acl = false refuses its next message with the topic
// authorization error, and a reload back lets the one after through, with
// no new connection to the gateway and the same process throughout.
func TestLibrdkafkaReloadOnOpenConnection(t *testing.T) {
	e := start(t)
	p := startProducer(t, t.TempDir(), topicU+":0", append(e.clientProps(idPipeA), "linger.ms=0")...)
	if got := sendAndWait(t, p, "open-1"); got != "" {
		t.Fatalf("open-1 under allow_if_no_acl = true: %s", got)
	}
	conns := e.accepted()
	reload := func(allow bool) {
		pol := seedPolicy
		if !allow {
			pol = strings.Replace(seedPolicy, "allow_if_no_acl = true", "allow_if_no_acl = false", 1)
		}
		if err := os.WriteFile(policyPath(e), []byte(pol), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.gw.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	reload(false)
	if got := sendAndWait(t, p, "open-2"); got != "Broker:_Topic_authorization_failed" {
		t.Fatalf("open-2 after the reload to allow_if_no_acl = false: %q, want the topic authorization error", got)
	}
	reload(true)
	if got := sendAndWait(t, p, "open-3"); got != "" {
		t.Fatalf("open-3 after the reload back: %s", got)
	}
	if now := e.accepted(); now != conns {
		t.Fatalf("the gateway accepted %v connections during the reloads, was %v: the producer reconnected", now, conns)
	}
	if err := p.alive(); err != nil {
		t.Fatal(err)
	}
	if n := e.endOffsets(topicU)[0]; n != 2 {
		t.Fatalf("%s/0 holds %d messages, want open-1 and open-3", topicU, n)
	}
	t.Logf("one librdkafka connection (%v accepted in all): delivered, refused after the reload, delivered after the reload back", conns)
}

func sendAndWait(t *testing.T, p *producer, msg string) string {
	t.Helper()
	t.Logf("attempt: %s", msg)
	if err := p.sendText(msg); err != nil {
		t.Fatal(err)
	}
	return p.outcome(t, msg, 30*time.Second)
}
