package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgeid/edgeid/plugins/common/deepstream"
)

// sinkTarget is one message-broker sink, resolved the way DeepStream's
// Kafka adaptor resolves it: broker from msg-broker-conn-str, topic from
// the sink, and every librdkafka property from the proto-cfg of the
// adaptor config it names (msg-broker-config).
type sinkTarget struct {
	broker string
	topic  string
	props  []string // "key=value" librdkafka properties
	cert   string   // ssl.certificate.location, for the producer's ID
}

// loadSinks resolves the Kafka sinks of the pipeline config at path.
func loadSinks(path string) ([]sinkTarget, error) {
	kf, err := deepstream.ParseFile(path, deepstream.DefaultLimits)
	if err != nil {
		return nil, err
	}
	app, err := deepstream.ParseApp(kf)
	if err != nil {
		return nil, err
	}
	var out []sinkTarget
	for _, s := range app.Sinks {
		if proto, _ := deepstream.ProtoFromLib(s.ProtoLib); proto != "kafka" {
			continue
		}
		broker, ok := deepstream.BrokerAddr(s.ConnStr)
		if !ok {
			return nil, fmt.Errorf("[%s] msg-broker-conn-str %q is not host;port", s.Group, s.ConnStr)
		}
		t := sinkTarget{broker: broker, topic: s.Topic}
		if s.BrokerConfig != "" {
			cfgPath := s.BrokerConfig
			if !filepath.IsAbs(cfgPath) {
				cfgPath = filepath.Join(filepath.Dir(path), cfgPath)
			}
			bkf, err := deepstream.ParseFile(cfgPath, deepstream.DefaultLimits)
			if err != nil {
				return nil, fmt.Errorf("[%s] msg-broker-config: %w", s.Group, err)
			}
			bs, err := deepstream.ParseBrokerConfig(bkf)
			if err != nil {
				return nil, fmt.Errorf("[%s] msg-broker-config: %w", s.Group, err)
			}
			for _, kv := range strings.Split(bs.ProtoCfg, ";") {
				kv = strings.TrimSpace(kv)
				if kv == "" {
					continue
				}
				t.props = append(t.props, kv)
				if v, ok := strings.CutPrefix(kv, "ssl.certificate.location="); ok {
					t.cert = v
				}
			}
			if t.cert == "" {
				// Plaintext to edgeid-helper's local Kafka gateway: no
				// certificate in proto-cfg; the helper writes the SVID
				// beside cfg_kafka.txt, and the message names it.
				t.cert = filepath.Join(filepath.Dir(cfgPath), "svid.pem")
			}
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("no enabled Kafka message-broker sink")
	}
	return out, nil
}

// producerID reads the SPIFFE ID of the client certificate at path.
func producerID(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return ""
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil || len(c.URIs) == 0 {
		return ""
	}
	return c.URIs[0].String()
}

// The ledger (-sent-log) records every publish so that a test can account
// for each message: one JSON line {"seq":N,"event":"attempt","msg":...}
// written and synced before kcat starts, then {"seq":N,"event":"acked"} or
// {"seq":N,"event":"failed","error":...} once kcat has finished. Sequence
// numbers continue across restarts (they resume after the ledger's last),
// so a lost restart shows as a gap or a repeat, never as silence.
type ledgerEntry struct {
	Seq   int    `json:"seq"`
	Event string `json:"event"`
	Msg   string `json:"msg,omitempty"`
	Error string `json:"error,omitempty"`
}

// Ledger events.
const (
	eventAttempt = "attempt"
	eventAcked   = "acked"
	eventFailed  = "failed"
	eventRetry   = "retry"
)

// ledger appends entries to the -sent-log file.
type ledger struct{ path string }

// lastSeq returns the highest sequence number in the ledger (0 if none).
func (l ledger) lastSeq() (int, error) {
	if l.path == "" {
		return 0, nil
	}
	data, err := os.ReadFile(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	last := 0
	for _, line := range strings.Split(string(data), "\n") {
		var e ledgerEntry
		if json.Unmarshal([]byte(line), &e) == nil && e.Seq > last {
			last = e.Seq
		}
	}
	return last, nil
}

// append writes one entry and syncs it.
func (l ledger) append(e ledgerEntry) error {
	if l.path == "" {
		return nil
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sendTimeout bounds one kcat run; librdkafka's own message timeout is
// shorter, so a send that cannot be delivered fails instead of hanging, and
// finishes within edgeid-helper's default stop timeout (10 s) when the
// pipeline is asked to stop mid-send.
const (
	sendTimeout      = 9 * time.Second
	messageTimeoutMS = "8000"
)

// publishLoop publishes one detection message per interval to every sink
// through kcat (librdkafka, DeepStream's Kafka client), until ctx ends.
// Every attempt is in the ledger before it is sent, with its outcome
// after; a send in flight when ctx ends is finished, not cut off, so that
// no message is left in doubt by a restart.
func publishLoop(ctx context.Context, configPath, kcat string, interval time.Duration, sentLog string, sent *atomic.Int64) error {
	sinks, err := loadSinks(configPath)
	if err != nil {
		return err
	}
	l := ledger{path: sentLog}
	seq, err := l.lastSeq()
	if err != nil {
		return fmt.Errorf("sent log: %w", err)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		for _, s := range sinks {
			seq++
			msg, _ := json.Marshal(map[string]any{
				"producer": producerID(s.cert),
				"sensor":   filepath.Base(configPath),
				"pid":      os.Getpid(),
				"seq":      seq,
				"time":     time.Now().UTC().Format(time.RFC3339Nano),
			})
			if err := l.append(ledgerEntry{Seq: seq, Event: eventAttempt, Msg: string(msg)}); err != nil {
				return fmt.Errorf("sent log: %w", err)
			}
			args := []string{"-P", "-b", s.broker, "-t", s.topic, "-q", "-X", "message.timeout.ms=" + messageTimeoutMS}
			for _, p := range s.props {
				args = append(args, "-X", p)
			}
			// A send that fails is tried again, up to sendTries times, as
			// a producer application does; each failed try is in the
			// ledger ("retry"), and the outcome is the last try's. A
			// reader of two files (cert, key) can straddle one rotation.
			var outcome ledgerEntry
			for try := 1; ; try++ {
				out, err := sendOnce(kcat, args, msg)
				if err == nil {
					outcome = ledgerEntry{Seq: seq, Event: eventAcked}
					sent.Add(1)
					break
				}
				detail := fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out)))
				slog.Warn("Publish failed", "seq", seq, "try", try, "broker", s.broker, "topic", s.topic, "error", err, "kcat", strings.TrimSpace(string(out)))
				if try == sendTries {
					outcome = ledgerEntry{Seq: seq, Event: eventFailed, Error: detail}
					break
				}
				if err := l.append(ledgerEntry{Seq: seq, Event: eventRetry, Error: detail}); err != nil {
					return fmt.Errorf("sent log: %w", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err := l.append(outcome); err != nil {
				return fmt.Errorf("sent log: %w", err)
			}
			if ctx.Err() != nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// sendTries bounds the tries of one message.
const sendTries = 3

// sendOnce runs kcat for one message, in its own process group: kcat plays
// librdkafka inside DeepStream, so a stop signal to the pipeline's group
// must reach the pipeline, which finishes this send, not kcat. It is not
// bound to the pipeline's context: a stop must not cut a send in half.
func sendOnce(kcat string, args []string, msg []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdin = bytes.NewReader(append(msg, '\n'))
	return cmd.CombinedOutput()
}
