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

// publishLoop publishes one detection message per interval to every sink
// through kcat (librdkafka, DeepStream's Kafka client), until ctx ends.
// Each successful publish increments sent and appends a line to sentLog
// when set, so tests can compare what was produced with what arrived.
func publishLoop(ctx context.Context, configPath, kcat string, interval time.Duration, sentLog string, sent *atomic.Int64) error {
	sinks, err := loadSinks(configPath)
	if err != nil {
		return err
	}
	seq := 0
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
			args := []string{"-P", "-b", s.broker, "-t", s.topic, "-q"}
			for _, p := range s.props {
				args = append(args, "-X", p)
			}
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			cmd := exec.CommandContext(cctx, kcat, args...)
			cmd.Stdin = bytes.NewReader(append(msg, '\n'))
			out, err := cmd.CombinedOutput()
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				slog.Warn("Publish failed", "broker", s.broker, "topic", s.topic, "error", err, "kcat", strings.TrimSpace(string(out)))
				continue
			}
			sent.Add(1)
			if sentLog != "" {
				if f, err := os.OpenFile(sentLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
					f.Write(append(msg, '\n'))
					f.Close()
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}
