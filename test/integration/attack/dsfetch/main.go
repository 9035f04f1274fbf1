// Command dsfetch is the attack suite's Workload API client: it fetches
// the caller's X.509 SVIDs once, with a bounded timeout, and writes what it
// got (or the agent's error) as JSON. It is what an attacker's process runs
// to ask the agent for an identity.
//
//	dsfetch -socket PATH | -fd N  -result FILE [-timeout 10s]
//	        [-join-cgroup DIR] [-c CONFIG] [-exec -- PROGRAM ARGS...]
//
// -fd uses a Workload API connection inherited from the parent, so that
// the agent attests the process that connected (SO_PEERCRED), not dsfetch.
// -join-cgroup creates DIR and moves this process into it first; with
// -exec it then execs PROGRAM instead of fetching (the cgroup is kept). -c
// is accepted and ignored, so that a renamed dsfetch looks like a
// DeepStream app started with a config.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
)

// Result is what -result receives.
type Result struct {
	SPIFFEIDs []string `json:"spiffe_ids,omitempty"`
	Error     string   `json:"error,omitempty"`
	PID       int      `json:"pid"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		slog.Error("dsfetch failed", "error", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("dsfetch", flag.ContinueOnError)
	socket := fs.String("socket", "", "Workload API socket path")
	fd := fs.Int("fd", -1, "inherited file descriptor of a connected Workload API socket")
	resultPath := fs.String("result", "", "write the result as JSON to this file")
	timeout := fs.Duration("timeout", 10*time.Second, "bound of the single fetch")
	joinCgroup := fs.String("join-cgroup", "", "create this cgroup directory and move into it first")
	doExec := fs.Bool("exec", false, "exec the program after -- instead of fetching")
	_ = fs.String("c", "", "ignored (a DeepStream app's config flag)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *joinCgroup != "" {
		if err := os.MkdirAll(*joinCgroup, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*joinCgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	if *doExec {
		if fs.NArg() == 0 {
			return errors.New("-exec needs a program after --")
		}
		return syscall.Exec(fs.Arg(0), fs.Args(), os.Environ())
	}
	if *resultPath == "" || (*socket == "") == (*fd < 0) {
		return errors.New("usage: dsfetch -socket PATH | -fd N -result FILE")
	}
	opts := []workloadapi.ClientOption{workloadapi.WithAddr("unix://" + *socket)}
	if *fd >= 0 {
		conn, err := net.FileConn(os.NewFile(uintptr(*fd), "workload-api"))
		if err != nil {
			return fmt.Errorf("inherited fd %d: %w", *fd, err)
		}
		used := false
		opts = []workloadapi.ClientOption{
			workloadapi.WithAddr("unix:///inherited"),
			workloadapi.WithDialOptions(grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
				if used {
					return nil, errors.New("the inherited connection is gone")
				}
				used = true
				return conn, nil
			})),
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res := Result{PID: os.Getpid()}
	x, err := workloadapi.FetchX509Context(ctx, opts...)
	if err != nil {
		res.Error = err.Error()
	} else {
		for _, s := range x.SVIDs {
			res.SPIFFEIDs = append(res.SPIFFEIDs, s.ID.String())
		}
	}
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*resultPath+".tmp", data, 0o644); err != nil {
		return err
	}
	return os.Rename(*resultPath+".tmp", *resultPath)
}
