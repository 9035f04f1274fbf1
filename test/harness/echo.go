package harness

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// EchoFailures wraps t so that every failure message (Error, Errorf, Fatal,
// Fatalf) is logged once more at the very end of the test, after the
// service logs that cleanups dump on failure. A CI log shows a failed
// test's last lines; without the echo the reason would scroll away above
// hundreds of log lines. Call it first, before anything registers a
// cleanup, and use the returned TB everywhere in the test.
func EchoFailures(t *testing.T) testing.TB {
	e := &echoTB{TB: t}
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.msgs) > 0 {
			t.Logf("==== why this test failed (repeated after the dumped logs) ====\n%s", strings.Join(e.msgs, "\n"))
		}
	})
	return e
}

type echoTB struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (e *echoTB) record(msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.msgs = append(e.msgs, msg)
}

func (e *echoTB) Error(args ...any) {
	e.TB.Helper()
	e.record(fmt.Sprint(args...))
	e.TB.Error(args...)
}

func (e *echoTB) Errorf(format string, args ...any) {
	e.TB.Helper()
	e.record(fmt.Sprintf(format, args...))
	e.TB.Errorf(format, args...)
}

func (e *echoTB) Fatal(args ...any) {
	e.TB.Helper()
	e.record(fmt.Sprint(args...))
	e.TB.Fatal(args...)
}

func (e *echoTB) Fatalf(format string, args ...any) {
	e.TB.Helper()
	e.record(fmt.Sprintf(format, args...))
	e.TB.Fatalf(format, args...)
}
