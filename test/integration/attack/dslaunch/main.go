// Command dslaunch is the attack suite's pipeline launcher, the part of
// edgeid-helper that matters to the deepstream attestor: it starts its app
// held at exec (helper/holdexec), watches the Workload API (the agent
// attests it while the app is held), releases the app when the first SVID
// arrives and records every X.509 update as a JSON line, so a test can see
// the identity and measure rotations.
//
//	dslaunch -socket PATH -log FILE [-wait-file FILE] [-timeout 60s]
//	         -- PROGRAM ARGS...
//
// -wait-file delays the launch until FILE exists (so that a test can first
// move this process into a cgroup). The process runs until killed; the app
// dies with it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/edgeid/edgeid/helper/holdexec"
)

// Event is one line of -log.
type Event struct {
	Time     time.Time `json:"time"`
	SVIDs    []SVID    `json:"svids,omitempty"`
	Error    string    `json:"error,omitempty"`
	ChildPID int       `json:"child_pid"`
}

// SVID is one X509-SVID of an update.
type SVID struct {
	ID        string    `json:"id"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		slog.Error("dslaunch failed", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dslaunch", flag.ContinueOnError)
	socket := fs.String("socket", "", "Workload API socket path")
	logPath := fs.String("log", "", "append every X.509 update as a JSON line")
	waitFile := fs.String("wait-file", "", "launch only once this file exists")
	timeout := fs.Duration("timeout", 60*time.Second, "give up when no SVID arrives within this time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 || *socket == "" || *logPath == "" {
		return errors.New("usage: dslaunch -socket PATH -log FILE -- PROGRAM ARGS")
	}
	logf, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	var mu sync.Mutex
	emit := func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		data, _ := json.Marshal(e)
		_, _ = logf.Write(append(data, '\n'))
	}

	if !waitForFile(ctx, *waitFile) {
		return nil
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	held, err := holdexec.Start(cmd)
	if err != nil {
		return err
	}
	child := cmd.Process.Pid
	defer func() {
		if held.Kill() != nil {
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := make(chan struct{})
	w := logWatcher(child, emit, first)
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr("unix://"+*socket))
	}()
	select {
	case <-first:
		// Here edgeid-helper writes the SVID files; then the app may run.
		if err := held.Release(); err != nil {
			return err
		}
	case <-time.After(*timeout):
		emit(Event{Time: time.Now(), Error: "no SVID within " + timeout.String(), ChildPID: child})
		return nil
	case <-ctx.Done():
		return nil
	}
	select {
	case <-ctx.Done():
	case err := <-watchErr:
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

type watcher struct {
	update func(*workloadapi.X509Context)
	fail   func(error)
}

func (w watcher) OnX509ContextUpdate(x *workloadapi.X509Context) { w.update(x) }
func (w watcher) OnX509ContextWatchError(err error)              { w.fail(err) }

// waitForFile waits until path exists (at once when path is empty); false
// when ctx ends first.
func waitForFile(ctx context.Context, path string) bool {
	for path != "" {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

// logWatcher emits every X.509 update and watch error of the child's
// launcher, and closes first on the first update.
func logWatcher(child int, emit func(Event), first chan struct{}) watcher {
	var once sync.Once
	return watcher{
		update: func(x *workloadapi.X509Context) {
			e := Event{Time: time.Now(), ChildPID: child}
			for _, s := range x.SVIDs {
				c := s.Certificates[0]
				e.SVIDs = append(e.SVIDs, SVID{ID: s.ID.String(), Serial: c.SerialNumber.String(), NotBefore: c.NotBefore, NotAfter: c.NotAfter})
			}
			emit(e)
			once.Do(func() { close(first) })
		},
		fail: func(err error) { emit(Event{Time: time.Now(), Error: err.Error(), ChildPID: child}) },
	}
}
