package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/edgeid/edgeid/internal/hcldiag"
)

// MaxFileBytes bounds the size of a configuration file.
const MaxFileBytes = 1 << 20

// Warning is a non-fatal finding, such as a deprecated key.
type Warning struct {
	// Range is "file:line,col-col", or the file name for a finding about
	// the whole file.
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

// Parse parses src, naming it filename in messages. It works in two steps,
// each reporting every problem it finds with its file and line: decoding
// the file into the structs of file.go (unknown keys, wrong types), then,
// if that succeeded, checking the values and applying defaults.
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
	d := &decoder{src: src}
	body := d.file(file.Body.(*hclsyntax.Body), filename)
	if err := d.err(); err != nil {
		return nil, d.warns, err
	}
	v := &validator{report: report{warns: d.warns}, getenv: opts.Getenv}
	cfg := v.config(body)
	if err := v.err(); err != nil {
		return nil, v.warns, err
	}
	return cfg, v.warns, nil
}

// file decodes the top level: the attributes after the pre-pass, then the
// blocks.
func (d *decoder) file(body *hclsyntax.Body, filename string) *fileBody {
	t := reflect.TypeFor[*fileBody]()
	sc := schemaOf(t.Elem())
	fields, seen := d.prepass(body, sc)
	v := d.body(t, hcl.Range{Filename: filename}, fields, "")
	for _, b := range body.Blocks {
		d.topBlock(v, sc, b, seen)
	}
	return v.Interface().(*fileBody)
}

// topBlock decodes one top-level block into the struct v points at. seen
// holds the keys and blocks given so far: only a list of blocks (tunnel)
// may repeat.
func (d *decoder) topBlock(v reflect.Value, sc schema, b *hclsyntax.Block, seen map[string]hcl.Range) {
	k, known := sc.keys[b.Type]
	if _, dup := seen[b.Type]; dup && k.kind != kBlockList {
		d.errorf(b.TypeRange, "block %q given twice", b.Type)
		return
	}
	seen[b.Type] = b.TypeRange
	switch {
	case known && k.kind == kBlock:
		if len(b.Labels) != 0 {
			d.errorf(b.LabelRanges[0], "block %q takes no label", b.Type)
			return
		}
		fv := v.Elem().Field(k.index)
		fv.Set(d.block(fv.Type(), b, b.Type))
	case known && k.kind == kBlockList:
		if len(b.Labels) != 1 {
			d.errorf(b.TypeRange, "a %s block needs one label, its name: %s \"name\" { ... }", b.Type, b.Type)
			return
		}
		fv := v.Elem().Field(k.index)
		elem := d.block(fv.Type().Elem(), b, b.Type+" "+strconv.Quote(b.Labels[0]))
		elem.Elem().Field(schemaOf(fv.Type().Elem().Elem()).label).SetString(b.Labels[0])
		fv.Set(reflect.Append(fv, elem))
	default:
		d.errorf(b.TypeRange, "unknown block %q", b.Type)
		return
	}
	v.Interface().(*fileBody).set(b.Type, b.TypeRange)
}

// report collects problems and warnings.
type report struct {
	problems []problem
	warns    []Warning
}

// problem is one error at a place in the file.
type problem struct {
	rng hcl.Range
	msg string
}

func (p problem) Error() string { return where(p.rng) + ": " + p.msg }

// where is "file:line,col-col", or the file name for the whole file.
func where(rng hcl.Range) string {
	if rng.Start.Line == 0 {
		return rng.Filename
	}
	return rng.String()
}

func (r *report) errorf(rng hcl.Range, format string, args ...any) {
	r.problems = append(r.problems, problem{rng: rng, msg: fmt.Sprintf(format, args...)})
}

func (r *report) warn(rng hcl.Range, msg string) {
	r.warns = append(r.warns, Warning{Range: where(rng), Message: msg})
}

// err joins every problem, in file order; problems about the whole file
// come last.
func (r *report) err() error {
	if len(r.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(r.problems, func(a, b problem) int {
		if (a.rng.Start.Line == 0) != (b.rng.Start.Line == 0) {
			if a.rng.Start.Line == 0 {
				return 1
			}
			return -1
		}
		return a.rng.Start.Byte - b.rng.Start.Byte
	})
	errs := make([]error, len(r.problems))
	for i, p := range r.problems {
		errs[i] = p
	}
	return fmt.Errorf("config: %w", errors.Join(errs...))
}
