// Command deepstream-test5-app is a stand-in for NVIDIA's
// deepstream-test5-app, built under the same name so that the deepstream
// WorkloadAttestor treats it as a DeepStream app.
//
// It takes the pipeline config with -c (or --cfg-file), parses it with the
// same strict parser the attestor uses, and then runs until it is killed.
// With -fetch-svid it first fetches its own X509-SVID from the Workload API,
// as a DeepStream app that called the API itself would, and reports the
// result as JSON in the -result file.
//
//	deepstream-test5-app -c test5.txt [-fetch-svid -socket PATH -timeout 30s]
//	    [-result FILE] [-started-file FILE] [-require-file FILE] [-exit]
//
// With -publish-interval it also publishes a detection message to every
// Kafka sink of its config through kcat (librdkafka), configured only from
// the files the config names: msg-broker-conn-str, topic and the proto-cfg
// of msg-broker-config (the cfg_kafka.txt edgeid-helper renders).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/edgeid/edgeid/plugins/common/deepstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		slog.Error("deepstream-test5-app failed", "error", err)
		os.Exit(1)
	}
}

// Result is what -result receives after -fetch-svid.
type Result struct {
	SPIFFEIDs []string `json:"spiffe_ids,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// configFlag collects repeated -c values.
type configFlag []string

func (c *configFlag) String() string     { return strings.Join(*c, ",") }
func (c *configFlag) Set(v string) error { *c = append(*c, v); return nil }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("deepstream-test5-app", flag.ContinueOnError)
	var configs configFlag
	fs.Var(&configs, "c", "pipeline config file (repeatable)")
	fs.Var(&configs, "cfg-file", "same as -c")
	fetch := fs.Bool("fetch-svid", false, "fetch this process's X509-SVID from the Workload API")
	socket := fs.String("socket", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "Workload API socket (path or unix:// address)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long -fetch-svid keeps trying")
	resultPath := fs.String("result", "", "write the -fetch-svid result as JSON to this file")
	startedPath := fs.String("started-file", "", "create this file as soon as the app runs: \"ok\", or \"missing <file>\" when a -require-file is absent")
	requireFile := fs.String("require-file", "", "fail at startup when this file (say, the Kafka certificate) does not exist, as DeepStream does")
	exit := fs.Bool("exit", false, "exit after startup (and -fetch-svid) instead of running until killed")
	publish := fs.Duration("publish-interval", 0, "publish a detection to every Kafka sink at this interval through kcat (0: do not publish)")
	kcat := fs.String("kcat", "kcat", "kcat program used to publish")
	sentLog := fs.String("sent-log", "", "ledger of every publish: each attempt before it is sent, then its outcome (JSON lines); sequence numbers continue across restarts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	state := "ok\n"
	var missing error
	if *requireFile != "" {
		if _, err := os.Stat(*requireFile); err != nil {
			state = "missing " + *requireFile + "\n"
			missing = fmt.Errorf("required file: %w", err)
		}
	}
	if *startedPath != "" {
		if err := os.WriteFile(*startedPath, []byte(state), 0o644); err != nil {
			return err
		}
	}
	if missing != nil {
		return missing
	}
	if len(configs) == 0 {
		return errors.New("no config file given with -c")
	}
	for _, c := range configs {
		kf, err := deepstream.ParseFile(c, deepstream.DefaultLimits)
		if err != nil {
			return err
		}
		app, err := deepstream.ParseApp(kf)
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		slog.Info("Pipeline config loaded", "config", c, "summary", app.Summary())
	}
	if *fetch {
		res := fetchSVID(ctx, *socket, *timeout)
		if *resultPath != "" {
			if err := writeJSON(*resultPath, res); err != nil {
				return err
			}
		}
		slog.Info("Workload API result", "spiffe_ids", res.SPIFFEIDs, "error", res.Error)
	}
	if *exit {
		return nil
	}
	if *publish > 0 {
		var sent atomic.Int64
		err := publishLoop(ctx, configs[0], *kcat, *publish, *sentLog, &sent)
		slog.Info("Stopped publishing", "sent", sent.Load())
		return err
	}
	<-ctx.Done()
	return nil
}

// fetchSVID asks the Workload API for this process's SVIDs until it gets
// them or timeout passes.
func fetchSVID(ctx context.Context, socket string, timeout time.Duration) Result {
	if socket == "" {
		return Result{Error: "no Workload API socket (-socket or SPIFFE_ENDPOINT_SOCKET)"}
	}
	if !strings.Contains(socket, "://") {
		socket = "unix://" + socket
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
		x, err := workloadapi.FetchX509Context(callCtx, workloadapi.WithAddr(socket))
		callCancel()
		if err == nil {
			var res Result
			for _, s := range x.SVIDs {
				res.SPIFFEIDs = append(res.SPIFFEIDs, s.ID.String())
			}
			return res
		}
		// Keep the agent's answer rather than the deadline that ended the
		// last attempt.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return Result{Error: last.Error()}
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
