package helperbench

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the benchmark binary double as the programs the benchmarks
// run beside the helpers:
//   - EDGEID_BENCH_ROLE=signal-receiver appends the wall-clock time of every
//     SIGUSR1 to EDGEID_BENCH_SIGLOG;
//   - EDGEID_BENCH_ROLE=backend serves the tunnel benchmark's backend (see
//     serveBackend);
//   - EDGEID_BENCH_ROLE=relay relays TCP to EDGEID_BENCH_TARGET (see
//     serveRelay).
func TestMain(m *testing.M) {
	switch os.Getenv("EDGEID_BENCH_ROLE") {
	case "signal-receiver":
		os.Exit(receiveSignals(os.Getenv("EDGEID_BENCH_SIGLOG")))
	case "backend":
		if err := serveBackend(os.Getenv("EDGEID_BENCH_AGENT"), os.Getenv("EDGEID_BENCH_ADDRS")); err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "relay":
		if err := serveRelay(os.Getenv("EDGEID_BENCH_TARGET"), os.Getenv("EDGEID_BENCH_ADDRS")); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func receiveSignals(path string) int {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 1
	}
	defer f.Close()
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	for sig := range ch {
		if sig != syscall.SIGUSR1 {
			return 0
		}
		fmt.Fprintf(f, "%d\n", time.Now().UnixNano())
	}
	return 0
}
