package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeid/edgeid/orchestrator/render"
)

// Starting a phase's services and waiting until they are ready.

func (r *Runner) proc(h *render.Host, s *render.Service) process {
	p := &proc{
		name:    h.Name + "/" + s.Name,
		argv:    s.Argv,
		dir:     h.Root,
		env:     append(cleanEnv(), "HOME="+h.Root),
		pidFile: filepath.Join(h.Root, "pids", s.Name+".pid"),
		logFile: filepath.Join(h.Root, "logs", s.Name+".log"),
		account: s.Account,
		caps:    s.Caps,
		privsep: r.privsep,
	}
	if r.launch != nil {
		return r.launch(p)
	}
	return p
}

// services returns every service of the given kind, optionally only of
// one name, in plan order.
func (r *Runner) services(kind render.ServiceKind, name string) []svcRef {
	var out []svcRef
	for _, h := range r.plan.Hosts {
		if !r.isLocal(h.Name) {
			continue
		}
		for i := range h.Services {
			s := &h.Services[i]
			if s.Kind == kind && (name == "" || s.Name == name) {
				out = append(out, svcRef{h, s})
			}
		}
	}
	return out
}

type svcRef struct {
	h *render.Host
	s *render.Service
}

// job is a service to start and how to tell it is ready.
type job struct {
	ref   svcRef
	ready func() error
}

// startAll starts every job's service (unless it runs already with the
// same configuration), then waits for all of them to be ready, in
// parallel, failing early with the log tail of a process that dies. Sites
// are independent, so their services come up side by side.
func (r *Runner) startAll(jobs []job) error {
	procs := make([]process, len(jobs))
	verbs := make([]string, len(jobs))
	for _, j := range jobs {
		if err := missingNeeds(j.ref); err != nil {
			return err
		}
		// The operator copied them, most likely as root; the service
		// reads them as its own account, and replaces some (vault_pki
		// writes its unwrapped and rotated secret_id back, by rename in
		// the file's directory), so their directories become its too.
		if err := chownFiles(r.owner(j.ref.s.Account), j.ref.s.Needs...); err != nil {
			return err
		}
		if err := chownFiles(r.owner(j.ref.s.Account), parentDirs(j.ref.s.Needs)...); err != nil {
			return err
		}
	}
	for i, j := range jobs {
		p := r.proc(j.ref.h, j.ref.s)
		procs[i] = p
		if p.pid() != 0 && (r.readsChanged(j.ref.s) || p.argvChanged()) {
			r.logf("      %s: configuration changed, restarting", p.label())
			if err := p.stop(30 * time.Second); err != nil {
				return err
			}
		}
		started, err := p.start()
		if err != nil {
			return err
		}
		verbs[i] = "already running"
		if started {
			verbs[i] = "started"
		}
	}
	errs := make([]error, len(jobs))
	// The first process to die ends every wait of the phase.
	var died atomic.Bool
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := procs[i]
			err := poll(r.cfg.StepTimeout, func() error {
				if dead, tail := p.exited(); dead {
					died.Store(true)
					return permanentError{fmt.Errorf("%s exited; last log lines (%s):\n%s", p.label(), p.logPath(), tail)}
				}
				err := j.ready()
				if err != nil && died.Load() {
					return permanentError{fmt.Errorf("%s: wait abandoned, another service of this phase exited (last: %w)", p.label(), err)}
				}
				return err
			})
			if err != nil {
				errs[i] = fmt.Errorf("%s not ready within %s: %w", p.label(), r.cfg.StepTimeout, err)
			}
		}()
	}
	wg.Wait()
	for i, p := range procs {
		if errs[i] == nil {
			r.logf("      %s %s (pid %d)", p.label(), verbs[i], p.pid())
		}
	}
	return errors.Join(errs...)
}

// missingNeeds names the files a service needs from another host that
// are not here yet.
func missingNeeds(ref svcRef) error {
	var missing []string
	for _, f := range ref.s.Needs {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s/%s needs files made on host %s; copy them from there to the same paths here (keep the secrets 0600): %s",
		ref.h.Name, ref.s.Name, ref.s.NeedsFrom, strings.Join(missing, ", "))
}

// readsChanged reports whether a service's command line names a file that
// install rewrote.
func (r *Runner) readsChanged(s *render.Service) bool {
	for _, a := range s.Argv {
		if r.changed[a] {
			return true
		}
	}
	return false
}

// parentDirs are the distinct directories of paths.
func parentDirs(paths []string) []string {
	var dirs []string
	for _, p := range paths {
		if d := filepath.Dir(p); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}
