package cli

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// startSupervisor leaves `edgeid supervise` running detached (its own
// session, stdin from /dev/null, output appended to supervise.log under
// logDir), with up's own flags less --supervise. A supervisor already
// running for the run makes the new one exit at once, so `up --supervise`
// may run again. Its environment is edgeid's less the custodians'
// identities, which stay with the run that was given them.
func startSupervisor(upArgs []string, logDir string, stdout io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("supervise: %w", err)
	}
	args := superviseArgs(upArgs)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return fmt.Errorf("supervise: %w", err)
	}
	logPath := filepath.Join(logDir, "supervise.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("supervise: %w", err)
	}
	defer log.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "EDGEID_VAULT_UNSEAL_IDENTITIES=")
	})
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("supervise: %w", err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	fmt.Fprintf(stdout, "edgeid up: supervised by edgeid supervise (pid %d, log %s)\n", pid, logPath)
	return nil
}

// superviseArgs is the supervise command line for up's: the same flags
// less -supervise in any of its forms (a flag value "supervise" stays).
func superviseArgs(upArgs []string) []string {
	args := []string{"supervise"}
	for _, a := range upArgs {
		if name := strings.TrimLeft(a, "-"); name != a && (name == "supervise" || strings.HasPrefix(name, "supervise=")) {
			continue
		}
		args = append(args, a)
	}
	return args
}
