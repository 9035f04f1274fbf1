package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// The pre-pass turns the top level of a spiffe-helper file into today's
// spelling before it is decoded: camelCase keys get their snake_case name
// (and a deprecation warning), and a file mode written as a number with a
// leading 0 gets its octal value.

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

// prepass returns the top-level attributes in file order under their
// canonical names, and where each name was first set. A key set twice
// (agentAddress and agent_address) is an error.
func (d *decoder) prepass(body *hclsyntax.Body, sc schema) ([]field, map[string]hcl.Range) {
	seen := map[string]hcl.Range{}
	var out []field
	for _, f := range attributes(body) {
		written, key := f.name, f.name
		if canonical, ok := legacyKeys[written]; ok {
			key, f.canonical = canonical, canonical
			msg := fmt.Sprintf("key %q is deprecated, use %q", written, canonical)
			if written == "timeout" {
				msg = fmt.Sprintf("key %q is deprecated, use %q (a duration such as \"5s\")", written, canonical)
			}
			d.warns = append(d.warns, Warning{Range: f.nameRange.String(), Message: msg})
		}
		if prev, dup := seen[key]; dup {
			d.errorf(f.nameRange, "key %q sets %q again (first set at %s)", written, key, prev.String())
			continue
		}
		seen[key] = f.nameRange
		if sc.keys[key].kind == kMode && !d.octal(&f) {
			continue
		}
		out = append(out, f)
	}
	return out, seen
}

// octal reads a file mode the way spiffe-helper's HCL 1 parser did: a
// number written with a leading 0 is octal (0644). It replaces such a
// number by its value, so that the decoder reads every number as it is
// written. It reports false, with an error, for a number such as 0999.
func (d *decoder) octal(f *field) bool {
	v, diags := f.expr.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.Number {
		return true // the decoder reports it
	}
	rng := f.expr.Range()
	text := strings.TrimSpace(string(d.src[rng.Start.Byte:rng.End.Byte]))
	if len(text) <= 1 || text[0] != '0' {
		return true
	}
	m, err := strconv.ParseUint(text, 8, 32)
	if err != nil {
		d.errorf(rng, "key %q: %s is not an octal file mode", f.name, text)
		return false
	}
	f.expr = &hclsyntax.LiteralValueExpr{Val: cty.NumberUIntVal(m), SrcRange: rng}
	return true
}
