package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgeid/edgeid/helper/kafkaconf"
	"github.com/edgeid/edgeid/internal/hcldiag"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// MaxFileBytes bounds the size of a configuration file.
const MaxFileBytes = 1 << 20

// Warning is a non-fatal finding, such as a deprecated key.
type Warning struct {
	// Range is "file:line,col-col".
	Range   string
	Message string
}

func (w Warning) String() string { return w.Range + ": " + w.Message }

// Options changes how Parse resolves defaults.
type Options struct {
	// Getenv reads SPIFFE_ENDPOINT_SOCKET and SPIRE_AGENT_ADDRESS when
	// agent_address is unset; nil means os.Getenv.
	Getenv func(string) string
}

// Load reads and parses the file at path.
func Load(path string, opts Options) (*Config, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, opts)
}

// Parse parses src, naming it filename in messages. The error joins every
// problem found, each with its file and line.
func Parse(filename string, src []byte, opts Options) (*Config, []Warning, error) {
	if len(src) > MaxFileBytes {
		return nil, nil, fmt.Errorf("config: %s is %d bytes, over the %d byte limit", filename, len(src), MaxFileBytes)
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("config: %s", hcldiag.Join(diags))
	}
	p := &parser{src: src, filename: filename, raw: rawConfig{}}
	p.top(file.Body.(*hclsyntax.Body))
	if len(p.errs) > 0 {
		return nil, p.warns, fmt.Errorf("config: %w", errors.Join(p.errs...))
	}
	cfg, errs := p.build(opts)
	if len(errs) > 0 {
		return nil, p.warns, fmt.Errorf("config: %s: %w", filename, errors.Join(errs...))
	}
	return cfg, p.warns, nil
}

// field is one key = value, from a block body or an object expression.
type field struct {
	name      string
	nameRange hcl.Range
	expr      hclsyntax.Expression
}

type parser struct {
	src      []byte
	filename string
	raw      rawConfig
	errs     []error
	warns    []Warning
}

// rawConfig holds decoded values by canonical key, before validation.
type rawConfig map[string]any

func (p *parser) errorf(rng hcl.Range, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", rng.String(), fmt.Sprintf(format, args...)))
}

// legacyKeys maps the camelCase keys of spiffe-helper before v0.6 (still in
// the KubeEdge SPIRE example) to today's keys.
var legacyKeys = map[string]string{
	"agentAddress":             "agent_address",
	"cmdArgs":                  "cmd_args",
	"certDir":                  "cert_dir",
	"addIntermediatesToBundle": "add_intermediates_to_bundle",
	"svidFileName":             "svid_file_name",
	"svidKeyFileName":          "svid_key_file_name",
	"svidBundleFileName":       "svid_bundle_file_name",
	"renewSignal":              "renew_signal",
	"timeout":                  "workload_api_timeout",
}

type kind int

const (
	kString kind = iota
	kBool
	kInt
	kMode
	kDuration
	kStringList
)

// topKeys are the top-level attributes and their types.
var topKeys = map[string]kind{
	// spiffe-helper v0.11
	"agent_address":               kString,
	"cmd":                         kString,
	"cmd_args":                    kString,
	"pid_file_name":               kString,
	"cert_dir":                    kString,
	"cert_file_mode":              kMode,
	"key_file_mode":               kMode,
	"jwt_bundle_file_mode":        kMode,
	"jwt_svid_file_mode":          kMode,
	"include_federated_domains":   kBool,
	"omit_expired":                kBool,
	"renew_signal":                kString,
	"daemon_mode":                 kBool,
	"hint":                        kString,
	"svid_file_name":              kString,
	"svid_key_file_name":          kString,
	"svid_bundle_file_name":       kString,
	"jwt_bundle_file_name":        kString,
	"add_intermediates_to_bundle": kBool,
	// edgeid
	"spiffe_id":              kString,
	"on_rotate":              kString,
	"stop_timeout":           kDuration,
	"restart_on_exit":        kBool,
	"restart_backoff_min":    kDuration,
	"restart_backoff_max":    kDuration,
	"hold_until_svid":        kBool,
	"workload_api_timeout":   kDuration,
	"combined_pem_file_name": kString,
	"log_level":              kString,
}

var healthKeys = map[string]kind{
	"listener_enabled": kBool,
	"bind_address":     kString,
	"bind_port":        kInt,
	"liveness_path":    kString,
	"readiness_path":   kString,
}

var jwtKeys = map[string]kind{
	"jwt_audience":        kString,
	"jwt_extra_audiences": kStringList,
	"jwt_svid_file_name":  kString,
}

var pkcs12Keys = map[string]kind{
	"keystore_file_name":   kString,
	"truststore_file_name": kString,
	"password_file":        kString,
	"password_env":         kString,
	"legacy":               kBool,
}

var kafkaKeys = map[string]kind{
	"bootstrap_servers":                 kString,
	"endpoint_identification_algorithm": kString,
	"cipher_suites":                     kString,
	"librdkafka_file_name":              kString,
	"librdkafka_template":               kString,
	"deepstream_file_name":              kString,
	"deepstream_template":               kString,
	"deepstream_partition_key":          kString,
	"java_file_name":                    kString,
	"java_template":                     kString,
	"java_keystore_type":                kString,
}

// kafkaMapKeys are kafka attributes holding a map of extra properties.
var kafkaMapKeys = map[string]bool{
	"librdkafka_properties": true,
	"deepstream_properties": true,
	"java_properties":       true,
}

var tunnelKeys = map[string]kind{
	"mode":                 kString,
	"listen":               kString,
	"target":               kString,
	"allowed_spiffe_ids":   kStringList,
	"allow_remote_clients": kBool,
	"max_conn_lifetime":    kDuration,
	"dial_timeout":         kDuration,
}

// rawTunnel is one tunnel block before validation.
type rawTunnel struct {
	name   string
	rng    hcl.Range
	values map[string]any
}

// rawJWT is one jwt_svids entry before validation.
type rawJWT struct {
	rng    hcl.Range
	values map[string]any
}

func (p *parser) top(body *hclsyntax.Body) {
	seen := map[string]hcl.Range{}
	names := make([]string, 0, len(body.Attributes))
	for name := range body.Attributes {
		names = append(names, name)
	}
	// Report in file order.
	sort.Slice(names, func(i, j int) bool {
		return body.Attributes[names[i]].SrcRange.Start.Byte < body.Attributes[names[j]].SrcRange.Start.Byte
	})
	for _, name := range names {
		attr := body.Attributes[name]
		key := name
		if canonical, ok := legacyKeys[name]; ok {
			key = canonical
			msg := fmt.Sprintf("key %q is deprecated, use %q", name, canonical)
			if name == "timeout" {
				msg = fmt.Sprintf("key %q is deprecated, use %q (a duration such as \"5s\")", name, canonical)
			}
			p.warns = append(p.warns, Warning{Range: attr.NameRange.String(), Message: msg})
		}
		if prev, dup := seen[key]; dup {
			p.errorf(attr.NameRange, "key %q sets %q again (first set at %s)", name, key, prev.String())
			continue
		}
		seen[key] = attr.NameRange
		f := field{name: name, nameRange: attr.NameRange, expr: attr.Expr}
		switch {
		case key == "jwt_svids":
			p.jwtSVIDs(f)
		case key == "health_checks":
			p.object(f, healthKeys, "health_checks", func(vals map[string]any) { p.raw["health_checks"] = vals })
		case key == "pkcs12":
			p.object(f, pkcs12Keys, "pkcs12", func(vals map[string]any) { p.raw["pkcs12"] = vals })
		default:
			k, ok := topKeys[key]
			if !ok {
				p.errorf(attr.NameRange, "unknown key %q", name)
				continue
			}
			if v, ok := p.value(f, k); ok {
				p.raw[key] = v
			}
		}
	}
	for _, block := range body.Blocks {
		if _, dup := seen[block.Type]; dup && block.Type != "tunnel" {
			p.errorf(block.TypeRange, "block %q given twice", block.Type)
			continue
		}
		seen[block.Type] = block.TypeRange
		switch block.Type {
		case "health_checks", "pkcs12", "kafka":
			if len(block.Labels) != 0 {
				p.errorf(block.LabelRanges[0], "block %q takes no label", block.Type)
				continue
			}
			fields := p.blockFields(block, block.Type)
			switch block.Type {
			case "health_checks":
				p.raw["health_checks"] = p.fields(fields, healthKeys, block.Type, nil)
			case "pkcs12":
				p.raw["pkcs12"] = p.fields(fields, pkcs12Keys, block.Type, nil)
			case "kafka":
				p.raw["kafka"] = p.fields(fields, kafkaKeys, block.Type, kafkaMapKeys)
			}
		case "tunnel":
			if len(block.Labels) != 1 {
				p.errorf(block.TypeRange, "a tunnel block needs one label, its name: tunnel \"name\" { ... }")
				continue
			}
			fields := p.blockFields(block, "tunnel")
			vals := p.fields(fields, tunnelKeys, "tunnel "+strconv.Quote(block.Labels[0]), nil)
			tunnels, _ := p.raw["tunnel"].([]rawTunnel)
			p.raw["tunnel"] = append(tunnels, rawTunnel{name: block.Labels[0], rng: block.TypeRange, values: vals})
		default:
			p.errorf(block.TypeRange, "unknown block %q", block.Type)
		}
	}
}

// blockFields lists a block's attributes; nested blocks are errors.
func (p *parser) blockFields(block *hclsyntax.Block, where string) []field {
	for _, nested := range block.Body.Blocks {
		p.errorf(nested.TypeRange, "unknown block %q in %s", nested.Type, where)
	}
	out := make([]field, 0, len(block.Body.Attributes))
	for name, attr := range block.Body.Attributes {
		out = append(out, field{name: name, nameRange: attr.NameRange, expr: attr.Expr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].nameRange.Start.Byte < out[j].nameRange.Start.Byte })
	return out
}

// object decodes key = { ... }, the HCL 1 spelling of a block.
func (p *parser) object(f field, keys map[string]kind, where string, set func(map[string]any)) {
	fields, ok := p.objectFields(f)
	if !ok {
		return
	}
	set(p.fields(fields, keys, where, nil))
}

func (p *parser) objectFields(f field) ([]field, bool) {
	obj, ok := f.expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		p.errorf(f.expr.Range(), "%q must be a block or an object { ... }", f.name)
		return nil, false
	}
	out := make([]field, 0, len(obj.Items))
	for _, item := range obj.Items {
		name := hcl.ExprAsKeyword(item.KeyExpr)
		if name == "" {
			v, diags := item.KeyExpr.Value(nil)
			if diags.HasErrors() || v.Type() != cty.String || v.IsNull() {
				p.errorf(item.KeyExpr.Range(), "invalid key in %q", f.name)
				continue
			}
			name = v.AsString()
		}
		out = append(out, field{name: name, nameRange: item.KeyExpr.Range(), expr: item.ValueExpr})
	}
	return out, true
}

// fields decodes fields against keys; mapKeys names keys holding a string map.
func (p *parser) fields(fields []field, keys map[string]kind, where string, mapKeys map[string]bool) map[string]any {
	vals := map[string]any{}
	for _, f := range fields {
		if _, dup := vals[f.name]; dup {
			p.errorf(f.nameRange, "key %q given twice in %s", f.name, where)
			continue
		}
		if mapKeys[f.name] {
			if m, ok := p.stringMap(f); ok {
				vals[f.name] = m
			}
			continue
		}
		k, ok := keys[f.name]
		if !ok {
			p.errorf(f.nameRange, "unknown key %q in %s", f.name, where)
			continue
		}
		if v, ok := p.value(f, k); ok {
			vals[f.name] = v
		}
	}
	return vals
}

func (p *parser) jwtSVIDs(f field) {
	tuple, ok := f.expr.(*hclsyntax.TupleConsExpr)
	if !ok {
		p.errorf(f.expr.Range(), "%q must be a list of objects [{ jwt_audience = ..., jwt_svid_file_name = ... }]", f.name)
		return
	}
	var out []rawJWT
	for i, item := range tuple.Exprs {
		fields, ok := p.objectFields(field{name: fmt.Sprintf("jwt_svids[%d]", i), expr: item})
		if !ok {
			continue
		}
		vals := p.fields(fields, jwtKeys, fmt.Sprintf("jwt_svids[%d]", i), nil)
		out = append(out, rawJWT{rng: item.Range(), values: vals})
	}
	p.raw["jwt_svids"] = out
}

func (p *parser) stringMap(f field) ([]kafkaconf.Property, bool) {
	fields, ok := p.objectFields(f)
	if !ok {
		return nil, false
	}
	out := make([]kafkaconf.Property, 0, len(fields))
	for _, sub := range fields {
		v, ok := p.value(sub, kString)
		if !ok {
			continue
		}
		out = append(out, kafkaconf.Property{Key: sub.name, Value: v.(string)})
	}
	return out, true
}

// value evaluates a literal of the wanted kind. Values are constants: the
// file has no variables or functions.
func (p *parser) value(f field, k kind) (any, bool) {
	v, diags := f.expr.Value(nil)
	if diags.HasErrors() {
		p.errorf(f.expr.Range(), "key %q: %s", f.name, hcldiag.Join(diags))
		return nil, false
	}
	if v.IsNull() || !v.IsKnown() {
		p.errorf(f.expr.Range(), "key %q has no value", f.name)
		return nil, false
	}
	switch k {
	case kString:
		if v.Type() == cty.String {
			return v.AsString(), true
		}
		p.errorf(f.expr.Range(), "key %q must be a string", f.name)
	case kBool:
		switch v.Type() {
		case cty.Bool:
			return v.True(), true
		case cty.String:
			// HCL 1 accepted "true"/"false" strings for booleans.
			if b, err := strconv.ParseBool(v.AsString()); err == nil {
				return b, true
			}
		}
		p.errorf(f.expr.Range(), "key %q must be true or false", f.name)
	case kInt:
		if n, ok := p.integer(v); ok {
			return n, true
		}
		p.errorf(f.expr.Range(), "key %q must be a whole number", f.name)
	case kMode:
		return p.mode(f, v)
	case kDuration:
		switch v.Type() {
		case cty.String:
			d, err := time.ParseDuration(v.AsString())
			if err == nil && d >= 0 {
				return d, true
			}
			p.errorf(f.expr.Range(), "key %q: %q is not a duration such as \"30s\"", f.name, v.AsString())
			return nil, false
		case cty.Number:
			// A bare number is seconds.
			if n, ok := p.integer(v); ok && n >= 0 {
				return time.Duration(n) * time.Second, true
			}
		}
		p.errorf(f.expr.Range(), "key %q must be a duration such as \"30s\"", f.name)
	case kStringList:
		if !v.Type().IsTupleType() && !v.Type().IsListType() {
			p.errorf(f.expr.Range(), "key %q must be a list of strings", f.name)
			return nil, false
		}
		var out []string
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			if ev.IsNull() || ev.Type() != cty.String {
				p.errorf(f.expr.Range(), "key %q must be a list of strings", f.name)
				return nil, false
			}
			out = append(out, ev.AsString())
		}
		return out, true
	}
	return nil, false
}

func (p *parser) integer(v cty.Value) (int64, bool) {
	if v.Type() != cty.Number {
		return 0, false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return 0, false
	}
	n, acc := bf.Int64()
	return n, acc == big.Exact
}

// mode reads a file mode the way spiffe-helper's HCL 1 parser did: a number
// written with a leading 0 is octal (0644), any other number is decimal. A
// string is always octal ("0644" or "644").
func (p *parser) mode(f field, v cty.Value) (any, bool) {
	var n int64
	switch v.Type() {
	case cty.String:
		m, err := strconv.ParseUint(v.AsString(), 8, 32)
		if err != nil {
			p.errorf(f.expr.Range(), "key %q: %q is not an octal file mode", f.name, v.AsString())
			return nil, false
		}
		n = int64(m)
	case cty.Number:
		rng := f.expr.Range()
		text := strings.TrimSpace(string(p.src[rng.Start.Byte:rng.End.Byte]))
		if len(text) > 1 && text[0] == '0' {
			m, err := strconv.ParseUint(text, 8, 32)
			if err != nil {
				p.errorf(rng, "key %q: %s is not an octal file mode", f.name, text)
				return nil, false
			}
			n = int64(m)
		} else {
			i, ok := p.integer(v)
			if !ok {
				p.errorf(rng, "key %q must be a file mode such as 0644", f.name)
				return nil, false
			}
			n = i
		}
	default:
		p.errorf(f.expr.Range(), "key %q must be a file mode such as 0644", f.name)
		return nil, false
	}
	if n < 0 || n > 0o777 {
		p.errorf(f.expr.Range(), "key %q: mode %#o is outside 0000-0777", f.name, n)
		return nil, false
	}
	return fs.FileMode(n), true
}
