package kafkagw

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
)

const watchPolicyA = `allow "a" {
  actors     = ["spiffe://example.org/edge/site-a/cam"]
  resources  = ["topic:site-a.detections"]
  operations = ["WRITE"]
}
`

// watchPolicyB allows the same actor a second topic: same length as A
// would not matter, the content hash decides.
const watchPolicyB = `allow "a" {
  actors     = ["spiffe://example.org/edge/site-a/cam"]
  resources  = ["topic:site-a.detections", "topic:site-a.tracks"]
  operations = ["WRITE"]
}
`

// watchPolicyBad has an unknown operation on line 4.
const watchPolicyBad = `allow "a" {
  actors     = ["spiffe://example.org/edge/site-a/cam"]
  resources  = ["topic:site-a.detections"]
  operations = ["SCRIBBLE"]
}
`

type recordingSetter struct {
	mu  sync.Mutex
	set []*policy.Set
}

func (r *recordingSetter) SetPolicy(p *policy.Set) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set = append(r.set, p)
}

func (r *recordingSetter) current() (*policy.Set, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.set) == 0 {
		return nil, 0
	}
	return r.set[len(r.set)-1], len(r.set)
}

type watchRun struct {
	t       *testing.T
	path    string
	target  *recordingSetter
	hup     chan os.Signal
	results chan error
	log     *syncWriter
}

type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func startWatch(t *testing.T, interval time.Duration) *watchRun {
	t.Helper()
	r := &watchRun{t: t, path: filepath.Join(t.TempDir(), "policy.hcl"), target: &recordingSetter{},
		hup: make(chan os.Signal, 1), results: make(chan error, 16), log: &syncWriter{}}
	r.write(watchPolicyA)
	w := PolicyWatcher{Path: r.path, Interval: interval, Logger: slog.New(slog.NewTextHandler(r.log, nil)),
		Reloaded: func(_ *policy.Set, err error) { r.results <- err }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, r.target, r.hup) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("watcher did not stop when its context ended")
		}
	})
	return r
}

func (r *watchRun) write(src string) {
	r.t.Helper()
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(src), 0o600); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		r.t.Fatal(err)
	}
}

// next waits for one reload attempt and returns its error.
func (r *watchRun) next() error {
	r.t.Helper()
	select {
	case err := <-r.results:
		return err
	case <-time.After(5 * time.Second):
		r.t.Fatal("no reload attempt within 5s")
		return nil
	}
}

func (r *watchRun) quiet(d time.Duration) {
	r.t.Helper()
	select {
	case err := <-r.results:
		r.t.Fatalf("unexpected reload attempt (error %v)", err)
	case <-time.After(d):
	}
}

func allowsTracks(p *policy.Set) bool {
	return p.Decide("spiffe://example.org/edge/site-a/cam", policy.TopicResource("site-a.tracks"), policy.Write).Allowed
}

// A change to the file is picked up by the poll; a bad version keeps the
// old policy and is reported once with its file:line; fixing it reloads.
func TestPolicyWatcherFileChanges(t *testing.T) {
	r := startWatch(t, 20*time.Millisecond)
	r.quiet(150 * time.Millisecond) // the starting content is in force already

	r.write(watchPolicyB)
	if err := r.next(); err != nil {
		t.Fatal(err)
	}
	p, n := r.target.current()
	if n != 1 || !allowsTracks(p) {
		t.Fatalf("after the change: %d policies set, tracks allowed %v", n, p != nil && allowsTracks(p))
	}

	r.write(watchPolicyBad)
	var perr policy.Errors
	if err := r.next(); !errors.As(err, &perr) {
		t.Fatalf("bad policy: reload error %v, want policy.Errors", err)
	}
	if _, n := r.target.current(); n != 1 {
		t.Fatalf("a bad policy was set (%d policies set)", n)
	}
	if log := r.log.String(); !strings.Contains(log, "keeping the old policy") || !strings.Contains(log, r.path+":4,") {
		t.Fatalf("log lacks the failure with file:line:\n%s", log)
	}
	r.quiet(150 * time.Millisecond) // the same bad version is not retried

	r.write(watchPolicyA)
	if err := r.next(); err != nil {
		t.Fatal(err)
	}
	if p, n := r.target.current(); n != 2 || allowsTracks(p) {
		t.Fatalf("after the fix: %d policies set, tracks still allowed", n)
	}
}

// SIGHUP reloads even when the poll would not (an hour's interval).
func TestPolicyWatcherSIGHUP(t *testing.T) {
	r := startWatch(t, time.Hour)
	r.write(watchPolicyB)
	r.quiet(100 * time.Millisecond)
	r.hup <- syscall.SIGHUP
	if err := r.next(); err != nil {
		t.Fatal(err)
	}
	if p, n := r.target.current(); n != 1 || !allowsTracks(p) {
		t.Fatalf("after SIGHUP: %d policies set", n)
	}
	r.write(watchPolicyBad)
	r.hup <- syscall.SIGHUP
	if err := r.next(); err == nil {
		t.Fatal("SIGHUP with a bad policy: no error")
	}
	if p, n := r.target.current(); n != 1 || !allowsTracks(p) {
		t.Fatalf("bad policy on SIGHUP replaced the old one (%d policies set)", n)
	}
}
