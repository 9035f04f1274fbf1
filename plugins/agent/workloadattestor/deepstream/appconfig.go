package deepstream

import (
	"fmt"
	"path"
	"slices"

	"github.com/hashicorp/go-hclog"

	ds "github.com/edgeid/edgeid/plugins/common/deepstream"
)

// configSelectors reads one app config and returns its selectors. Any
// error means the config yields no selectors at all.
func (a *attestation) configSelectors(root *rootFS, proc *process, arg string, log hclog.Logger) ([]string, error) {
	cfgPath, err := cleanAbs(proc.cwd, arg)
	if err != nil {
		return nil, err
	}
	data, err := a.readRootFile(root, cfgPath, a.cfg.maxConfigBytes)
	if err != nil {
		return nil, err
	}
	sels := []string{"config_path:" + cfgPath, "config_sha256:" + sha256Hex(data)}
	if ext := path.Ext(cfgPath); ext == ".yml" || ext == ".yaml" {
		// YAML pipeline configs are bound by path and hash only.
		log.Debug("YAML config: only config_path and config_sha256", "config", cfgPath)
		return sels, nil
	}
	kf, err := ds.Parse(data, a.limits())
	if err != nil {
		return nil, err
	}
	app, err := ds.ParseApp(kf)
	if err != nil {
		return nil, err
	}
	c := &appConfig{a: a, root: root, dir: dirOf(cfgPath), log: log}
	messaging, err := c.messagingSelectors(app)
	if err != nil {
		return nil, err
	}
	models, err := c.modelSelectors(app)
	if err != nil {
		return nil, err
	}
	return append(append(sels, messaging...), models...), nil
}

// appConfig is a parsed app config being turned into selectors: the root
// of the process it belongs to, and its directory, against which the files
// it names resolve.
type appConfig struct {
	a    *attestation
	root *rootFS
	dir  string
	log  hclog.Logger
}

// ref resolves p, a path the config names.
func (c *appConfig) ref(p string) (string, error) { return cleanAbs(c.dir, p) }

// messagingSelectors returns the proto, broker and topic selectors of the
// message broker sinks and consumers of app.
func (c *appConfig) messagingSelectors(app *ds.App) ([]string, error) {
	var sels []string
	for _, s := range app.Sinks {
		bs, err := c.brokerFile(s.BrokerConfig)
		if err != nil {
			return nil, fmt.Errorf("[%s] msg-broker-config: %w", s.Group, err)
		}
		sels = c.appendProto(sels, s.ProtoLib)
		sels = appendBroker(sels, s.ConnStr, bs)
		topic := s.Topic
		if topic == "" {
			topic = bs.Topic
		}
		if topic != "" {
			sels = append(sels, "publish_topic:"+topic)
		}
	}
	for _, consumer := range app.Consumers {
		bs, err := c.brokerFile(consumer.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("[%s] config-file: %w", consumer.Group, err)
		}
		sels = c.appendProto(sels, consumer.ProtoLib)
		sels = appendBroker(sels, consumer.ConnStr, bs)
		for _, t := range consumer.Topics {
			sels = append(sels, "subscribe_topic:"+t)
		}
	}
	return sels, nil
}

// appendProto appends the proto selector of the protocol adaptor library
// lib, when it is a known one.
func (c *appConfig) appendProto(sels []string, lib string) []string {
	if lib == "" {
		return sels
	}
	if proto, ok := ds.ProtoFromLib(lib); ok {
		return append(sels, "proto:"+proto)
	}
	c.log.Debug("Unknown protocol adaptor library", "lib", lib)
	return sels
}

// appendBroker appends the broker selector of a connection string, or
// else of the adaptor config's host and port.
func appendBroker(sels []string, connStr string, bs ds.BrokerSettings) []string {
	if addr, ok := ds.BrokerAddr(connStr); ok {
		return append(sels, "broker:"+addr)
	}
	if addr, ok := ds.HostPort(bs.Hostname, bs.Port); ok {
		return append(sels, "broker:"+addr)
	}
	return sels
}

// brokerFile reads an adaptor config; a missing one is normal (the helper
// may render it after the first SVID) and only loses fallbacks.
func (c *appConfig) brokerFile(p string) (ds.BrokerSettings, error) {
	if p == "" {
		return ds.BrokerSettings{}, nil
	}
	abs, err := c.ref(p)
	if err != nil {
		return ds.BrokerSettings{}, err
	}
	kf, err := c.a.readRootFile(c.root, abs, c.a.cfg.maxConfigBytes)
	if err != nil {
		c.log.Debug("Adaptor config not readable; skipping it", "file", abs, "error", err)
		return ds.BrokerSettings{}, nil
	}
	parsed, err := ds.Parse(kf, c.a.limits())
	if err != nil {
		c.log.Debug("Adaptor config malformed; skipping it", "file", abs, "error", err)
		return ds.BrokerSettings{}, nil
	}
	bs, err := ds.ParseBrokerConfig(parsed)
	if err != nil {
		c.log.Debug("Adaptor config malformed; skipping it", "file", abs, "error", err)
		return ds.BrokerSettings{}, nil
	}
	return bs, nil
}

// modelSelectors resolves the model files of app (which makes a config
// that names a path outside the root invalid) and, with hash_models,
// returns their model_sha256 selectors.
func (c *appConfig) modelSelectors(app *ds.App) ([]string, error) {
	models, err := c.a.modelRefs(c.root, app, c.ref, c.log)
	if err != nil {
		return nil, err
	}
	if !c.a.cfg.hashModels {
		return nil, nil
	}
	var sels []string
	for _, m := range models {
		h, err := c.a.hashIn(c.root, m, c.a.cfg.maxModelBytes)
		if err != nil {
			c.a.warn(c.log, "Unable to hash model file", "file", m, "error", err)
			continue
		}
		sels = append(sels, "model_sha256:"+h)
	}
	return sels, nil
}

// modelRefs resolves the model files named by the app config and by its
// nvinfer configs. Paths that escape the root make the config invalid.
func (a *attestation) modelRefs(root *rootFS, app *ds.App, ref func(string) (string, error), log hclog.Logger) ([]string, error) {
	var out []string
	for _, m := range app.Models {
		abs, err := ref(m.Path)
		if err != nil {
			return nil, fmt.Errorf("[%s] %s: %w", m.Group, m.Key, err)
		}
		out = append(out, abs)
	}
	for _, ic := range app.InferConfigs {
		abs, err := ref(ic.Path)
		if err != nil {
			return nil, fmt.Errorf("[%s] %s: %w", ic.Group, ic.Key, err)
		}
		if !a.cfg.hashModels {
			continue
		}
		if ext := path.Ext(abs); ext == ".yml" || ext == ".yaml" {
			continue
		}
		data, err := a.readRootFile(root, abs, a.cfg.maxConfigBytes)
		if err != nil {
			a.warn(log, "Unable to read nvinfer config", "file", abs, "error", err)
			continue
		}
		kf, err := ds.Parse(data, a.limits())
		if err != nil {
			a.warn(log, "Malformed nvinfer config", "file", abs, "error", err)
			continue
		}
		refs, err := ds.InferModels(kf)
		if err != nil {
			a.warn(log, "Malformed nvinfer config", "file", abs, "error", err)
			continue
		}
		inferDir := dirOf(abs)
		for _, r := range refs {
			p, err := cleanAbs(inferDir, r.Path)
			if err != nil {
				return nil, fmt.Errorf("%s [%s] %s: %w", abs, r.Group, r.Key, err)
			}
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// limits are the parser limits of a DeepStream config file.
func (a *attestation) limits() ds.Limits {
	lim := ds.DefaultLimits
	lim.MaxBytes = a.cfg.maxConfigBytes
	return lim
}
