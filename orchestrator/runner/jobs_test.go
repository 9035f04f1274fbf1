package runner

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/orchestrator/render"
)

// fakeFleet is the launcher seam's test double: it remembers which
// services run and logs every start and stop, in order.
type fakeFleet struct {
	mu      sync.Mutex
	running map[string]int // label → pid
	argvNew map[string]bool
	dies    map[string]bool
	events  []string
	nextPID int
}

func newFakeFleet() *fakeFleet {
	return &fakeFleet{running: map[string]int{}, argvNew: map[string]bool{}, dies: map[string]bool{}, nextPID: 100}
}

func (f *fakeFleet) launch(p *proc) process { return &fakeProc{f: f, p: p} }

func (f *fakeFleet) log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.events, " ")
}

type fakeProc struct {
	f *fakeFleet
	p *proc
}

func (q *fakeProc) label() string   { return q.p.name }
func (q *fakeProc) logPath() string { return q.p.logFile }
func (q *fakeProc) pid() int {
	q.f.mu.Lock()
	defer q.f.mu.Unlock()
	return q.f.running[q.p.name]
}
func (q *fakeProc) start() (bool, error) {
	q.f.mu.Lock()
	defer q.f.mu.Unlock()
	if q.f.running[q.p.name] != 0 {
		return false, nil
	}
	q.f.nextPID++
	q.f.running[q.p.name] = q.f.nextPID
	q.f.argvNew[q.p.name] = false
	q.f.events = append(q.f.events, "start:"+q.p.name)
	return true, nil
}
func (q *fakeProc) stop(time.Duration) error {
	q.f.mu.Lock()
	defer q.f.mu.Unlock()
	if q.f.running[q.p.name] != 0 {
		q.f.events = append(q.f.events, "stop:"+q.p.name)
	}
	delete(q.f.running, q.p.name)
	return nil
}
func (q *fakeProc) exited() (bool, string) {
	q.f.mu.Lock()
	defer q.f.mu.Unlock()
	if q.f.dies[q.p.name] {
		return true, "fatal: bad config"
	}
	return false, ""
}
func (q *fakeProc) argvChanged() bool {
	q.f.mu.Lock()
	defer q.f.mu.Unlock()
	return q.f.argvNew[q.p.name]
}

func fakeRunner(f *fakeFleet) (*Runner, *render.Host, *bytes.Buffer) {
	out := &bytes.Buffer{}
	h := &render.Host{Name: "edge", Root: "/nonexistent", Services: []render.Service{
		{Name: "spire-server", Kind: "spire-server", Argv: []string{"spire-server", "run", "-config", "/cfg/server.conf"}},
		{Name: "spire-agent", Kind: "spire-agent", Argv: []string{"spire-agent", "run", "-config", "/cfg/agent.conf"}},
	}}
	r := &Runner{cfg: Config{StepTimeout: 2 * time.Second, Out: out}, launch: f.launch, changed: map[string]bool{}}
	return r, h, out
}

func jobsFor(h *render.Host, ready func() error) []job {
	var jobs []job
	for i := range h.Services {
		jobs = append(jobs, job{svcRef{h, &h.Services[i]}, ready})
	}
	return jobs
}

func ok() error { return nil }

// A second up over a converged run starts and stops nothing; a service
// whose config file install rewrote, or whose command line changed, is
// stopped and started again, and only that one.
func TestStartAllRestartsOnlyWhatChanged(t *testing.T) {
	f := newFakeFleet()
	r, h, out := fakeRunner(f)
	if err := r.startAll(jobsFor(h, ok)); err != nil {
		t.Fatal(err)
	}
	if got, want := f.log(), "start:edge/spire-server start:edge/spire-agent"; got != want {
		t.Fatalf("first up: %q, want %q", got, want)
	}

	f.events = nil
	if err := r.startAll(jobsFor(h, ok)); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); got != "" {
		t.Fatalf("converged up touched processes: %q", got)
	}
	if !strings.Contains(out.String(), "edge/spire-agent already running") {
		t.Errorf("converged up does not say the agent already runs:\n%s", out)
	}

	f.events = nil
	r.changed = map[string]bool{"/cfg/agent.conf": true}
	if err := r.startAll(jobsFor(h, ok)); err != nil {
		t.Fatal(err)
	}
	if got, want := f.log(), "stop:edge/spire-agent start:edge/spire-agent"; got != want {
		t.Fatalf("after install rewrote the agent's config: %q, want %q", got, want)
	}

	f.events = nil
	r.changed = map[string]bool{}
	f.argvNew["edge/spire-server"] = true
	if err := r.startAll(jobsFor(h, ok)); err != nil {
		t.Fatal(err)
	}
	if got, want := f.log(), "stop:edge/spire-server start:edge/spire-server"; got != want {
		t.Fatalf("after the server's command line changed: %q, want %q", got, want)
	}
}

// A service that dies while the runner waits for it fails the phase at
// once, naming the service and its log, without waiting for the timeout.
func TestStartAllFailsFastOnAProcessThatDies(t *testing.T) {
	f := newFakeFleet()
	r, h, _ := fakeRunner(f)
	r.cfg.StepTimeout = time.Minute
	f.dies["edge/spire-agent"] = true
	start := time.Now()
	err := r.startAll(jobsFor(h, func() error { return errors.New("not ready") }))
	if err == nil || !strings.Contains(err.Error(), "edge/spire-agent exited") || !strings.Contains(err.Error(), "logs/spire-agent.log") || !strings.Contains(err.Error(), "fatal: bad config") {
		t.Fatalf("startAll: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("startAll waited %s for a dead process", d)
	}
}
