package deepstream

import (
	"fmt"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
)

// SinkTypeMsgBroker is the `type` of a `[sinkN]` group that publishes to a
// message broker through nvmsgconv + nvmsgbroker.
const SinkTypeMsgBroker = 6

// Sink is an enabled message-broker sink (`[sinkN]` with `type=6`).
type Sink struct {
	Group string
	// ProtoLib is msg-broker-proto-lib, the adaptor library path.
	ProtoLib string
	// ConnStr is msg-broker-conn-str, usually "host;port".
	ConnStr string
	// Topic is the topic the sink publishes to.
	Topic string
	// BrokerConfig is msg-broker-config, the adaptor config path as written
	// (relative paths are relative to the app config's directory).
	BrokerConfig string
}

// Consumer is an enabled `[message-consumerN]` group.
type Consumer struct {
	Group      string
	ProtoLib   string
	ConnStr    string
	ConfigFile string
	Topics     []string
}

// FileRef is a file path referenced by a config key, as written.
type FileRef struct {
	Group string
	Key   string
	Path  string
}

// App is what a DeepStream application config says about its messaging and
// models.
type App struct {
	Sinks     []Sink
	Consumers []Consumer
	// Models are model and engine files named directly in the app config.
	Models []FileRef
	// InferConfigs are the nvinfer config files (`config-file` of the GIE
	// groups); their own model keys are read with InferModels.
	InferConfigs []FileRef
}

// isGIEGroup reports whether a group configures an inference engine.
func isGIEGroup(name string) bool {
	return name == "primary-gie" || strings.HasPrefix(name, "secondary-gie")
}

func enabled(g *Group) (bool, error) {
	on, ok, err := g.Bool("enable")
	if err != nil {
		return false, err
	}
	return ok && on, nil
}

// ParseApp extracts the sinks, consumers and model references of an app
// config. Disabled groups (`enable=0` or no `enable` key, as DeepStream
// defaults to disabled) are skipped. A value with a bad escape or a
// non-numeric `type` is an error: the config is malformed.
func ParseApp(kf *KeyFile) (*App, error) {
	app := &App{}
	str := func(g *Group, key string) (string, error) {
		s, _, err := g.String(key)
		return s, err
	}
	for _, g := range kf.Groups {
		switch {
		case strings.HasPrefix(g.Name, "sink"):
			on, err := enabled(g)
			if err != nil {
				return nil, err
			}
			typ, _, err := g.Int("type")
			if err != nil {
				return nil, err
			}
			if !on || typ != SinkTypeMsgBroker {
				continue
			}
			s := Sink{Group: g.Name}
			for key, dst := range map[string]*string{
				"msg-broker-proto-lib": &s.ProtoLib,
				"msg-broker-conn-str":  &s.ConnStr,
				"topic":                &s.Topic,
				"msg-broker-config":    &s.BrokerConfig,
			} {
				if *dst, err = str(g, key); err != nil {
					return nil, err
				}
			}
			app.Sinks = append(app.Sinks, s)
		case strings.HasPrefix(g.Name, "message-consumer"):
			on, err := enabled(g)
			if err != nil {
				return nil, err
			}
			if !on {
				continue
			}
			c := Consumer{Group: g.Name}
			for key, dst := range map[string]*string{
				"proto-lib":   &c.ProtoLib,
				"conn-str":    &c.ConnStr,
				"config-file": &c.ConfigFile,
			} {
				if *dst, err = str(g, key); err != nil {
					return nil, err
				}
			}
			if c.Topics, _, err = g.StringList("subscribe-topic-list"); err != nil {
				return nil, err
			}
			app.Consumers = append(app.Consumers, c)
		case isGIEGroup(g.Name):
			on, err := enabled(g)
			if err != nil {
				return nil, err
			}
			if !on {
				continue
			}
			if p, err := str(g, "model-engine-file"); err != nil {
				return nil, err
			} else if p != "" {
				app.Models = append(app.Models, FileRef{Group: g.Name, Key: "model-engine-file", Path: p})
			}
			if p, err := str(g, "config-file"); err != nil {
				return nil, err
			} else if p != "" {
				app.InferConfigs = append(app.InferConfigs, FileRef{Group: g.Name, Key: "config-file", Path: p})
			}
		}
	}
	return app, nil
}

// inferModelKeys are the `[property]` keys of an nvinfer config that name
// model, engine or calibration files.
var inferModelKeys = []string{
	"model-engine-file", "onnx-file", "model-file", "proto-file",
	"uff-file", "tlt-encoded-model", "int8-calib-file",
}

// InferModels returns the model files named in an nvinfer config's
// `[property]` group.
func InferModels(kf *KeyFile) ([]FileRef, error) {
	g := kf.Group("property")
	if g == nil {
		return nil, nil
	}
	var refs []FileRef
	for _, key := range inferModelKeys {
		p, _, err := g.String(key)
		if err != nil {
			return nil, err
		}
		if p != "" {
			refs = append(refs, FileRef{Group: g.Name, Key: key, Path: p})
		}
	}
	return refs, nil
}

// BrokerSettings is what an adaptor config (`cfg_kafka.txt`, `cfg_amqp.txt`,
// `cfg_redis.txt`, ...) says in its `[message-broker]` group.
type BrokerSettings struct {
	Hostname string
	Port     string
	Topic    string
	ProtoCfg string
}

// ParseBrokerConfig reads the `[message-broker]` group of an adaptor config.
func ParseBrokerConfig(kf *KeyFile) (BrokerSettings, error) {
	var bs BrokerSettings
	g := kf.Group("message-broker")
	if g == nil {
		return bs, nil
	}
	var err error
	for key, dst := range map[string]*string{
		"hostname":  &bs.Hostname,
		"port":      &bs.Port,
		"topic":     &bs.Topic,
		"proto-cfg": &bs.ProtoCfg,
	} {
		if *dst, _, err = g.String(key); err != nil {
			return bs, err
		}
	}
	// proto-cfg is often quoted: proto-cfg = "message.timeout.ms=2000"
	bs.ProtoCfg = strings.Trim(bs.ProtoCfg, `"`)
	return bs, nil
}

// protocols maps the middle of an adaptor library name
// (libnvds_<name>_proto.so) to a protocol name.
var protocols = map[string]string{
	"kafka":      "kafka",
	"mqtt":       "mqtt",
	"amqp":       "amqp",
	"redis":      "redis",
	"azure":      "azure",
	"azure_edge": "azure",
}

// ProtoFromLib names the protocol of an adaptor library path such as
// /opt/nvidia/deepstream/deepstream/lib/libnvds_kafka_proto.so. It returns
// false for a library it does not know.
func ProtoFromLib(lib string) (string, bool) {
	base := path.Base(lib)
	name, ok := strings.CutPrefix(base, "libnvds_")
	if !ok {
		return "", false
	}
	if i := strings.Index(name, "_proto.so"); i > 0 {
		name = name[:i]
	} else {
		return "", false
	}
	p, ok := protocols[name]
	return p, ok
}

// BrokerAddr turns a DeepStream connection string "host;port" (optionally
// followed by ";topic" or further fields) into "host:port". It returns false
// when connStr is not of that form.
func BrokerAddr(connStr string) (string, bool) {
	parts := strings.Split(connStr, ";")
	if len(parts) < 2 {
		return "", false
	}
	return HostPort(parts[0], parts[1])
}

// HostPort joins a host and a port, checking both.
func HostPort(host, port string) (string, bool) {
	host, port = strings.TrimSpace(host), strings.TrimSpace(port)
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" || strings.ContainsAny(host, " \t/;") {
		return "", false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", false
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), true
}

// Summary is a flat, sorted view of an App for logs and the stand-in.
func (a *App) Summary() string {
	var topics []string
	for _, s := range a.Sinks {
		topics = append(topics, "pub:"+s.Topic)
	}
	for _, c := range a.Consumers {
		for _, t := range c.Topics {
			topics = append(topics, "sub:"+t)
		}
	}
	sort.Strings(topics)
	return fmt.Sprintf("%d sinks, %d consumers, topics %v", len(a.Sinks), len(a.Consumers), topics)
}
