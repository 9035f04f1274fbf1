package helper

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary double as the Kafka producer application
// that edgeid-helper runs as its cmd (EDGEID_TEST_ROLE=kafka-producer).
func TestMain(m *testing.M) {
	if os.Getenv("EDGEID_TEST_ROLE") == "kafka-producer" {
		os.Exit(runProducer())
	}
	os.Exit(m.Run())
}

// runProducer is a librdkafka application that cannot reload certificates:
// one long-running kcat producer fed a numbered message every 50 ms. Each
// number is logged once written to kcat. On SIGTERM it stops feeding,
// closes kcat's input so that kcat delivers what it holds and exits, and
// exits with kcat's status. kcat runs in its own process group so that
// only this program decides when it stops.
func runProducer() int {
	kcat, props, topic, genLog := os.Getenv("EDGEID_KCAT"), os.Getenv("EDGEID_PROPS"), os.Getenv("EDGEID_TOPIC"), os.Getenv("EDGEID_GENLOG")
	next := 1
	if f, err := os.Open(genLog); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && n >= next {
				next = n + 1
			}
		}
		f.Close()
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)

	cmd := exec.Command(kcat, "-F", props, "-P", "-t", topic, "-p", "0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	gen, err := os.OpenFile(genLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	defer gen.Close()
	fmt.Fprintf(os.Stderr, "producer: kcat pid %d starting at message %d\n", cmd.Process.Pid, next)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-term:
			in.Close()
			select {
			case err := <-done:
				fmt.Fprintf(os.Stderr, "producer: kcat finished: %v\n", err)
				if err != nil {
					return 1
				}
				return 0
			case <-time.After(8 * time.Second):
				fmt.Fprintln(os.Stderr, "producer: kcat did not finish in 8s")
				_ = cmd.Process.Kill()
				return 1
			}
		case err := <-done:
			fmt.Fprintf(os.Stderr, "producer: kcat exited on its own: %v\n", err)
			return 1
		case <-tick.C:
			if _, err := fmt.Fprintf(in, "msg-%d\n", next); err != nil {
				fmt.Fprintln(os.Stderr, "producer: write:", err)
				return 1
			}
			fmt.Fprintf(gen, "%d\n", next)
			next++
		}
	}
}
