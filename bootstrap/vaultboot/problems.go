package vaultboot

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Problem is one problem in a bootstrap configuration, at its key.
type Problem struct {
	// Range is where the key is in the file: the key itself, else its
	// block, else just the file (a key left out, a default at fault).
	Range hcl.Range
	// Key names the key as written ("vault.address",
	// "init.age_recipients[0]"), or a block ("init").
	Key string
	// Message says what is wrong, lowercase.
	Message string
}

// ConfigError is every problem New found in a configuration, in the order
// of the blocks. Its text names the file and the key of each; the source
// ranges are in Problems and Diagnostics.
type ConfigError struct {
	File     string
	Problems []Problem
}

func (e *ConfigError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = fmt.Sprintf("%s: %s: %s", e.File, p.Key, p.Message)
	}
	return "vaultboot: invalid config: " + strings.Join(parts, "; ")
}

// Diagnostics returns the problems as HCL diagnostics, each with its
// source range as the subject (see hcldiag.Join).
func (e *ConfigError) Diagnostics() hcl.Diagnostics {
	diags := make(hcl.Diagnostics, len(e.Problems))
	for i, p := range e.Problems {
		r := p.Range
		diags[i] = &hcl.Diagnostic{Severity: hcl.DiagError, Summary: p.Key + ": " + p.Message, Subject: &r}
	}
	return diags
}

// problems collects every configuration problem so that one run reports
// them all, each naming the file and the key.
type problems struct {
	file   string
	ranges map[string]hcl.Range
	list   []Problem
}

func (p *problems) add(key, format string, args ...any) {
	p.list = append(p.list, Problem{Range: p.rangeOf(key), Key: key, Message: fmt.Sprintf(format, args...)})
}

// rangeOf finds key in the file, or the list or block it belongs to.
func (p *problems) rangeOf(key string) hcl.Range {
	for k := key; k != ""; {
		if r, ok := p.ranges[k]; ok {
			return r
		}
		switch {
		case strings.HasSuffix(k, "]") && strings.Contains(k, "["):
			k = k[:strings.LastIndex(k, "[")]
		case strings.Contains(k, "."):
			k = k[:strings.LastIndex(k, ".")]
		default:
			k = ""
		}
	}
	return hcl.Range{Filename: p.file}
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ConfigError{File: p.file, Problems: p.list}
}

// duration parses the value of key, or def when it is empty: a whole,
// positive number of seconds (zero too with allowZero).
func (p *problems) duration(key, value, def string, allowZero bool) time.Duration {
	if value == "" {
		value = def
	}
	d, err := time.ParseDuration(value)
	switch {
	case err != nil:
		p.add(key, "%q is not a duration such as \"30s\" or \"8760h\"", value)
	case d < 0 || (d == 0 && !allowZero):
		p.add(key, "must be positive, got %q", value)
	case d%time.Second != 0:
		p.add(key, "must be a whole number of seconds, got %q", value)
	}
	return d
}
