package kafkaconf

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/template"
)

// Client configs a Renderer writes.
const (
	KindLibrdkafka = "librdkafka"
	KindDeepStream = "deepstream"
	KindJava       = "java"
)

// Output is one client config to render: its file name (empty: not
// rendered), an optional user template (a file path) and the extra
// properties applied after the built-in ones.
type Output struct {
	FileName string
	Template string
	Extra    []Property
}

// RendererConfig is what a Renderer renders.
type RendererConfig struct {
	// Paths are the files the configs point at; Settings are shared by
	// every output (Settings.Extra is ignored: each Output has its own).
	Paths    Paths
	Settings Settings
	// Password is the PKCS#12 store password ("" when there is none).
	Password string

	Librdkafka Output
	DeepStream Output
	Java       Output
	// DeepStreamPartitionKey is cfg_kafka.txt's partition-key.
	DeepStreamPartitionKey string
	// JavaKeystoreType is "PEM" or "PKCS12".
	JavaKeystoreType string

	// CertMode is the mode of a rendered file; KeyMode the mode of one
	// that may hold the store password.
	CertMode, KeyMode fs.FileMode
}

// File is one rendered client config.
type File struct {
	Name string
	Data []byte
	Mode fs.FileMode
}

// Renderer renders the Kafka client configs of one SVID.
type Renderer struct {
	cfg     RendererConfig
	outputs []output
}

type output struct {
	kind  string
	out   Output
	tmpl  *template.Template
	props func(Settings) ([]Property, error)
	// builtin renders the file without a template.
	builtin func(Settings) ([]byte, error)
	// holdsPassword is true when the built-in file carries the password.
	holdsPassword bool
}

// NewRenderer loads the templates and renders once, so that a bad template
// or setting fails at startup rather than at the first rotation.
func NewRenderer(cfg RendererConfig) (*Renderer, error) {
	r := &Renderer{cfg: cfg}
	librdkafkaProps := func(s Settings) ([]Property, error) { return LibrdkafkaProperties(cfg.Paths, s), nil }
	for _, o := range []output{
		{kind: KindLibrdkafka, out: cfg.Librdkafka, props: librdkafkaProps,
			builtin: func(s Settings) ([]byte, error) { return Librdkafka(cfg.Paths, s) }},
		{kind: KindDeepStream, out: cfg.DeepStream, props: librdkafkaProps,
			builtin: func(s Settings) ([]byte, error) { return DeepStream(cfg.Paths, s, cfg.DeepStreamPartitionKey) }},
		{kind: KindJava, out: cfg.Java, holdsPassword: cfg.JavaKeystoreType == "PKCS12",
			props: func(s Settings) ([]Property, error) {
				return JavaProperties(cfg.Paths, s, cfg.JavaKeystoreType, cfg.Password)
			},
			builtin: func(s Settings) ([]byte, error) { return Java(cfg.Paths, s, cfg.JavaKeystoreType, cfg.Password) }},
	} {
		if o.out.FileName == "" {
			continue
		}
		if o.out.Template != "" {
			text, err := os.ReadFile(o.out.Template)
			if err != nil {
				return nil, fmt.Errorf("kafkaconf: %s template: %w", o.kind, err)
			}
			if o.tmpl, err = Parse(filepath.Base(o.out.Template), string(text)); err != nil {
				return nil, err
			}
		}
		r.outputs = append(r.outputs, o)
	}
	if _, err := r.Files("spiffe://example.org/startup-check"); err != nil {
		return nil, err
	}
	return r, nil
}

// Files renders every configured client config for the SVID spiffeID. A
// file is written at KeyMode when it may hold the store password: the
// built-in Java file of a PKCS#12 store, and any file whose template names
// the password (or passes all its data on).
func (r *Renderer) Files(spiffeID string) ([]File, error) {
	out := make([]File, 0, len(r.outputs))
	for _, o := range r.outputs {
		s := r.cfg.Settings
		s.Extra = o.out.Extra
		mode := r.cfg.CertMode
		var data []byte
		var err error
		if o.tmpl == nil {
			if o.holdsPassword {
				mode = r.cfg.KeyMode
			}
			data, err = o.builtin(s)
		} else {
			if ReferencesPassword(o.tmpl) {
				mode = r.cfg.KeyMode
			}
			var props []Property
			if props, err = o.props(s); err == nil {
				data, err = Execute(o.tmpl, TemplateData{Paths: r.cfg.Paths, Settings: s, Properties: props, Password: r.cfg.Password, SPIFFEID: spiffeID})
			}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, File{Name: o.out.FileName, Data: data, Mode: mode})
	}
	return out, nil
}
