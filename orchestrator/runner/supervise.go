package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"
)

// ErrSupervised means another supervisor already watches the run.
var ErrSupervised = errors.New("runner: a supervisor already runs for this run directory")

// maxSuperviseBackoff caps the wait between failed attempts to converge.
const maxSuperviseBackoff = time.Minute

// Supervise keeps the run (or the host) up until ctx ends. Every interval
// it checks that each service runs; when one has stopped it converges with
// Up, which restarts what is missing in dependency order. While Up fails
// it retries with a backoff doubling from interval up to a minute. Only
// one supervisor runs per run directory (ErrSupervised otherwise). With
// metrics on, it serves /metrics at the host's supervisor listener
// (edgeid_orchestrator_*). The services keep running when it returns.
func (r *Runner) Supervise(ctx context.Context, interval time.Duration) error {
	unlock, err := r.lockSupervisor()
	if err != nil {
		return err
	}
	defer unlock()
	m := r.newSuperviseMetrics()
	if addr := r.supervisorMetricsAddr(); addr != "" {
		if err := r.serveSupervisorMetrics(ctx, addr, m); err != nil {
			return err
		}
		r.logf("%s supervise: metrics on http://%s/metrics", time.Now().Format(time.RFC3339), addr)
	}
	if err := r.serveStatusEndpoints(ctx); err != nil {
		return err
	}
	backoff := interval
	var retryAt time.Time
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		stopped := r.stopped()
		if len(stopped) == 0 || time.Now().Before(retryAt) {
			continue
		}
		r.logf("%s supervise: not running: %s; converging", time.Now().Format(time.RFC3339), strings.Join(stopped, ", "))
		err := r.Up(ctx)
		if ctx.Err() != nil {
			return nil
		}
		m.converged(stopped, err)
		if err != nil {
			r.logf("%s supervise: next attempt in %s: %v", time.Now().Format(time.RFC3339), backoff, err)
			retryAt = time.Now().Add(backoff)
			backoff = min(2*backoff, maxSuperviseBackoff)
			continue
		}
		backoff, retryAt = interval, time.Time{}
	}
}

// stopped names the services of this machine that do not run.
func (r *Runner) stopped() []string {
	var out []string
	for _, h := range r.plan.Hosts {
		if !r.isLocal(h.Name) {
			continue
		}
		for i := range h.Services {
			if p := r.proc(h, &h.Services[i]); p.pid() == 0 {
				out = append(out, p.label())
			}
		}
	}
	return out
}

func (r *Runner) supervisorProc() *proc {
	exe, _ := os.Executable()
	return &proc{
		name:    "supervisor",
		argv:    []string{exe},
		pidFile: filepath.Join(r.cfg.RunDir, "supervisor.pid"),
	}
}

// lockSupervisor takes the run directory's supervisor lock (held for the
// life of the process; the kernel drops it if the process dies) and
// records the supervisor's PID for Down.
func (r *Runner) lockSupervisor() (func(), error) {
	if err := os.MkdirAll(r.cfg.RunDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(r.cfg.RunDir, "supervisor.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrSupervised
		}
		return nil, fmt.Errorf("runner: supervisor lock: %w", err)
	}
	p := r.supervisorProc()
	if err := fsutil.WriteFileAtomicMkdir(p.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644, fsutil.Keep); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		os.Remove(p.pidFile)
		f.Close()
	}, nil
}
