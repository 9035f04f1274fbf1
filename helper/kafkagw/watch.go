package kafkagw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/internal/hcldiag"
)

// DefaultPolicyPollInterval is how often a PolicyWatcher reads the file.
const DefaultPolicyPollInterval = time.Second

// PolicySetter takes a new policy; *Gateway is one.
type PolicySetter interface {
	SetPolicy(*policy.Set)
}

var _ PolicySetter = (*Gateway)(nil)

// PolicyWatcher reloads a policy file on SIGHUP and when its content
// changes. The file is read and hashed (SHA-256) every Interval: no
// dependency on inotify, and an edit that keeps the size and mtime is
// still seen. A file that does not parse leaves the old policy in force;
// the error, with file:line,column, is logged once per bad version.
type PolicyWatcher struct {
	// Path is the policy file.
	Path string
	// Interval between reads; DefaultPolicyPollInterval when zero.
	Interval time.Duration
	// Logger takes the reload and failure messages.
	Logger *slog.Logger
	// Reloaded, when set, is called after each reload attempt with the
	// new policy or the error (tests, metrics).
	Reloaded func(*policy.Set, error)
}

// WatchPolicy runs a PolicyWatcher for gw's policy file path, with gw's
// logger, until ctx ends. hup carries the reload signal (SIGHUP); nil
// means file changes only.
func WatchPolicy(ctx context.Context, gw *Gateway, path string, hup <-chan os.Signal) error {
	return PolicyWatcher{Path: path, Logger: gw.log}.Run(ctx, gw, hup)
}

// Run watches until ctx ends. The content present when Run starts is taken
// as the one in force.
func (w PolicyWatcher) Run(ctx context.Context, target PolicySetter, hup <-chan os.Signal) error {
	if w.Interval <= 0 {
		w.Interval = DefaultPolicyPollInterval
	}
	if w.Logger == nil {
		w.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	last, _, err := w.read()
	if err != nil {
		w.Logger.Warn("Policy file unreadable; watching for it", "file", w.Path, "error", err)
	}
	tick := time.NewTicker(w.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case sig := <-hup:
			w.Logger.Info("Reloading the policy", "file", w.Path, "signal", fmt.Sprint(sig))
			last, _ = w.reload(target)
		case <-tick.C:
			sum, _, err := w.read()
			if err != nil || bytes.Equal(sum, last) {
				continue // a missing file keeps the policy; its return is a change
			}
			w.Logger.Info("Policy file changed; reloading", "file", w.Path)
			last, _ = w.reload(target)
		}
	}
}

// read returns the file's SHA-256 and content, read as policy.ParseFile
// reads it.
func (w PolicyWatcher) read() (sum, src []byte, err error) {
	src, err = hcldiag.ReadFile("policy", w.Path, policy.MaxFileBytes)
	if err != nil {
		return nil, nil, err
	}
	h := sha256.Sum256(src)
	return h[:], src, nil
}

// reload parses the file and swaps the policy in; it returns the hash of
// the version it read (good or bad), so a bad version is reported once,
// and why the policy in force was kept, if it was.
func (w PolicyWatcher) reload(target PolicySetter) ([]byte, error) {
	sum, src, err := w.read()
	var p *policy.Set
	if err == nil {
		p, err = policy.Parse(src, w.Path)
	}
	if err != nil {
		w.Logger.Error("Policy reload failed; keeping the old policy", "file", w.Path, "error", err.Error())
	} else {
		target.SetPolicy(p)
	}
	if w.Reloaded != nil {
		w.Reloaded(p, err)
	}
	return sum, err
}
