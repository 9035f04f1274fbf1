// Command testhelper is a minimal stand-in for edgeid-helper, used by the
// deepstream integration tests: it launches a command as its child
// (optionally held at exec with holdexec), fetches its own X509-SVID from the
// Workload API — which the deepstream attestor answers with the child's
// identity — records the result, releases the child and runs until killed.
//
//	testhelper -socket PATH -result FILE [-hold] [-started-file FILE]
//	    [-timeout 30s] -- COMMAND ARGS...
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
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/edgeid/edgeid/helper/holdexec"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		slog.Error("testhelper failed", "error", err)
		os.Exit(1)
	}
}

// Result is written to -result once the fetch is over.
type Result struct {
	SPIFFEIDs []string `json:"spiffe_ids,omitempty"`
	Error     string   `json:"error,omitempty"`
	// ChildPID is the launched child.
	ChildPID int `json:"child_pid"`
	// ChildStartedBeforeFetch reports whether -started-file existed when
	// the SVID arrived: with -hold it must be false.
	ChildStartedBeforeFetch bool `json:"child_started_before_fetch"`
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("testhelper", flag.ContinueOnError)
	socket := fs.String("socket", "", "Workload API socket path")
	resultPath := fs.String("result", "", "result file")
	hold := fs.Bool("hold", false, "start the child held at exec until the SVID is fetched")
	started := fs.String("started-file", "", "file the child creates when it runs")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to keep trying to fetch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 || *socket == "" || *resultPath == "" {
		return errors.New("usage: testhelper -socket PATH -result FILE [-hold] -- COMMAND ARGS")
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// The child must not outlive this helper.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var held *holdexec.Held
	var err error
	if *hold {
		held, err = holdexec.Start(cmd)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()

	res := Result{ChildPID: cmd.Process.Pid}
	fetchCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	for {
		callCtx, callCancel := context.WithTimeout(fetchCtx, 5*time.Second)
		x, err := workloadapi.FetchX509Context(callCtx, workloadapi.WithAddr("unix://"+*socket))
		callCancel()
		if err == nil {
			for _, s := range x.SVIDs {
				res.SPIFFEIDs = append(res.SPIFFEIDs, s.ID.String())
			}
			res.Error = ""
			break
		}
		// Keep the agent's answer rather than the deadline that ended the
		// last attempt.
		if fetchCtx.Err() != nil {
			if res.Error == "" {
				res.Error = err.Error()
			}
			break
		}
		res.Error = err.Error()
		time.Sleep(250 * time.Millisecond)
	}
	if *started != "" {
		_, serr := os.Stat(*started)
		res.ChildStartedBeforeFetch = serr == nil
	}
	// Here the real helper writes the SVID files; then the app may start.
	if held != nil {
		if err := held.Release(); err != nil {
			return err
		}
	}
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*resultPath+".tmp", data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(*resultPath+".tmp", *resultPath); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
