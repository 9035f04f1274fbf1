package runner

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// fakeControl is the controlPlane's test double: a service is ready once
// the fake fleet runs it, and every call is logged in the fleet's event
// log, so one log shows starts, readiness and control calls in order.
type fakeControl struct {
	f *fakeFleet
	// readySeen logs a service's readiness once.
	mu        sync.Mutex
	readySeen map[string]bool
}

func (c *fakeControl) event(e string) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.events = append(c.f.events, e)
}

func (c *fakeControl) ready(_ context.Context, ref svcRef) error {
	label := ref.h.Name + "/" + ref.s.Name
	c.f.mu.Lock()
	running := c.f.running[label] != 0
	c.f.mu.Unlock()
	if !running {
		return fmt.Errorf("%s does not run", label)
	}
	c.mu.Lock()
	seen := c.readySeen[label]
	c.readySeen[label] = true
	c.mu.Unlock()
	if !seen {
		c.event("ready:" + label)
	}
	return nil
}

func (c *fakeControl) bootstrapVault(_ context.Context, cfgPath string) ([]byte, error) {
	c.event("bootstrap:" + filepath.Base(cfgPath))
	return []byte("bootstrapped\n"), nil
}

func (c *fakeControl) bundlePEM(_ context.Context, server svcRef) ([]byte, error) {
	c.event("bundle:" + server.h.Name + "/" + server.s.Name)
	return []byte("bundle\n"), nil
}

func (c *fakeControl) joinToken(_ context.Context, server svcRef, _ string) (string, error) {
	c.event("token:" + server.h.Name + "/" + server.s.Name)
	return "token", nil
}

func (c *fakeControl) ensureEntries(_ context.Context, server svcRef, entries []render.Entry) (EntryCounts, error) {
	c.event("entries:" + server.h.Name + "/" + server.s.Name)
	return EntryCounts{Created: len(entries)}, nil
}

// orderTopology: Vault, the cloud, Kafka, and two sites with a workload
// each.
const orderTopology = `trust_domain = "example.org"
vault {
  mode = "managed"
}
kafka {
  mode = "demo"
}
site "a" {
  node "a-1" {}
  workload "app" {
    selectors = ["unix:uid:1000"]
    command   = "/bin/true"
  }
}
site "b" {
  node "b-1" {}
  workload "app" {
    selectors = ["unix:uid:1000"]
    command   = "/bin/true"
  }
}
`

// phaseRunner is a Runner over the embedded plan of orderTopology with
// the fake fleet and control plane.
func phaseRunner(t *testing.T) (*Runner, *fakeFleet) {
	t.Helper()
	top, err := topology.Parse([]byte(orderTopology), filepath.Join(t.TempDir(), "topology.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	env := render.Env{
		Embedded: true,
		HostRoot: func(h string) string { return filepath.Join(root, h) },
		HostAddr: func(string) string { return "127.0.0.1" },
		Port:     func(_, _ string, def int) int { return def },
	}
	plan, err := render.Build(top, env)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeFleet()
	r := &Runner{
		cfg: Config{StepTimeout: 2 * time.Second, Out: &bytes.Buffer{}, RunDir: t.TempDir()},
		top: top, plan: plan, env: env, changed: map[string]bool{},
		launch: f.launch, cp: &fakeControl{f: f, readySeen: map[string]bool{}},
	}
	return r, f
}

// TestUpPhaseOrder runs the phases of up that start services (all but
// install and the demo's message wait) through the launcher and control
// seams, and checks every dependency in the log: Vault is bootstrapped
// before a cloud server starts; a service starts only once what it
// attests or chains to (Service.Server) is ready, with its entries
// registered and its bundle fetched; helpers and the broker start only
// once the agent whose socket they use is ready.
func TestUpPhaseOrder(t *testing.T) {
	r, f := phaseRunner(t)
	steps := r.upSteps()
	if !strings.HasPrefix(steps[0].name, "Render") || !strings.Contains(steps[len(steps)-1].name, "message") {
		t.Fatalf("up's first and last phases are no longer install and the message wait: %q, %q", steps[0].name, steps[len(steps)-1].name)
	}
	for _, st := range steps[1 : len(steps)-1] {
		if err := st.fn(context.Background()); err != nil {
			t.Fatalf("%s: %v\nlog: %s", st.name, err, f.log())
		}
	}
	log := f.events
	at := func(e string) int {
		i := slices.Index(log, e)
		if i < 0 {
			t.Fatalf("%q never happened; log:\n%s", e, strings.Join(log, "\n"))
		}
		return i
	}
	before := func(a, b string) {
		t.Helper()
		if at(a) >= at(b) {
			t.Errorf("%s (#%d) after %s (#%d)", a, at(a), b, at(b))
		}
	}
	bySocket := map[string]string{}
	var services []string
	for _, h := range r.plan.Hosts {
		for _, s := range h.Services {
			label := h.Name + "/" + s.Name
			services = append(services, label)
			if s.Kind == render.KindSpireAgent {
				bySocket[s.Socket] = label
			}
		}
	}
	vault := "cloud/vault"
	before("start:"+vault, "bootstrap:bootstrap.hcl")
	for _, h := range r.plan.Hosts {
		for _, s := range h.Services {
			label := h.Name + "/" + s.Name
			before("start:"+label, "ready:"+label)
			switch {
			case s.Kind == render.KindSpireServer && s.Site == "":
				before("bootstrap:bootstrap.hcl", "start:"+label)
			case s.Server != "":
				before("ready:"+s.Server, "start:"+label)
			case s.Kind == render.KindHelper || s.Kind == render.KindKafka || s.Kind == render.KindKafkaGateway:
				agent, ok := bySocket[s.Socket]
				if !ok {
					t.Fatalf("%s uses socket %s, which no agent serves", label, s.Socket)
				}
				before("ready:"+agent, "start:"+label)
			}
			switch s.Kind {
			case render.KindKafkaGateway:
				// The broker is the gateway's upstream.
				before("ready:cloud/kafka", "start:"+label)
			case render.KindHelper:
				// A pipeline publishes through the cloud gateway.
				before("ready:cloud/kafka-gateway", "start:"+label)
			}
			if s.Kind == render.KindSpireAgent {
				before("entries:"+s.Server, "start:"+label)
				before("bundle:"+s.Server, "start:"+label)
			}
		}
	}
	for _, want := range []string{"kafka", "kafka-gateway", "helper-app", "spire-server", "upstream-agent", "spire-agent"} {
		if !slices.ContainsFunc(services, func(s string) bool { return strings.HasSuffix(s, "/"+want) }) {
			t.Errorf("the plan has no %s: the test covers less than it claims (%v)", want, services)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("log:\n%s", strings.Join(log, "\n"))
	}
}
