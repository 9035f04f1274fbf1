// Package hcldiag turns HCL diagnostics into the one-line errors every
// edgeid configuration reader (plugins, the Vault bootstrap, the helper)
// reports.
package hcldiag

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Join joins the error diagnostics in diags into one line, each as
// "file:line,col-col: summary; detail", separated by "; ". Warnings are
// left out.
func Join(diags hcl.Diagnostics) string {
	parts := make([]string, 0, len(diags))
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += "; " + d.Detail
		}
		if d.Subject != nil {
			msg = fmt.Sprintf("%s: %s", d.Subject.String(), msg)
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, "; ")
}

// Problem is one problem in a configuration file, at a place in it: what
// the topology and the gateway policy report, one per line.
type Problem struct {
	Range hcl.Range
	Msg   string
}

func (p Problem) Error() string {
	if p.Range.Filename == "" {
		return p.Msg
	}
	return fmt.Sprintf("%s:%d,%d: %s", p.Range.Filename, p.Range.Start.Line, p.Range.Start.Column, p.Msg)
}

// Problems turns the error diagnostics in diags into Problems ("summary:
// detail" at the diagnostic's subject); warnings are left out.
func Problems(diags hcl.Diagnostics) []Problem {
	var out []Problem
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		p := Problem{Msg: d.Summary}
		if d.Detail != "" {
			p.Msg += ": " + d.Detail
		}
		if d.Subject != nil {
			p.Range = *d.Subject
		}
		out = append(out, p)
	}
	return out
}

// Format is the text of every problem of a file: "<what>: N error(s):"
// then one indented line each.
func Format(what string, ps []Problem) string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return fmt.Sprintf("%s: %d error(s):\n  %s", what, len(ps), strings.Join(lines, "\n  "))
}

// ReadFile reads the configuration file at path, of at most limit bytes;
// what ("topology", "policy") prefixes its errors.
func ReadFile(what, path string, limit int64) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if info.Size() > limit {
		return nil, fmt.Errorf("%s: %s is %d bytes, over the %d byte limit", what, path, info.Size(), limit)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return src, nil
}

// Decode parses src (HCL native syntax, at most limit bytes, named
// filename) into v, strictly (gohcl): the problems come back as Problems,
// a too-large src as an error.
func Decode(what string, src []byte, filename string, limit int, v any) ([]Problem, error) {
	if len(src) > limit {
		return nil, fmt.Errorf("%s: %s is %d bytes, over the %d byte limit", what, filename, len(src), limit)
	}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return Problems(diags), nil
	}
	if diags := gohcl.DecodeBody(file.Body, nil, v); diags.HasErrors() {
		return Problems(diags), nil
	}
	return nil, nil
}
