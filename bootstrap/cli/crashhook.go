//go:build edgeid_testhooks

package cli

import (
	"log/slog"
	"os"
	"syscall"
)

// crashHook, in test builds only, kills the process right after the step
// that CrashAfterEnv names, for the crash-safety tests.
func crashHook(logger *slog.Logger) func(string) {
	at := os.Getenv(CrashAfterEnv)
	if at == "" {
		return nil
	}
	logger.Warn("Test hook armed: the process will kill itself", "after", at, "variable", CrashAfterEnv)
	return func(name string) {
		if name == at {
			logger.Warn("Test hook: killing the process", "after", name)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
