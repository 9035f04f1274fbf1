package vaultboot

import (
	"fmt"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/hcldiag"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// LoadFile reads and decodes the configuration file at path. Unknown keys,
// type mismatches and syntax errors are reported with file and line.
// Semantic checks happen in New.
func LoadFile(path string) (*Config, error) {
	data, err := fsutil.ReadFileLimited(path, MaxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("vaultboot: read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes configuration text; filename is used in messages and to
// resolve relative paths.
func Parse(filename string, data []byte) (*Config, error) {
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("vaultboot: config %s is %d bytes, over the %d byte limit", filename, len(data), MaxConfigBytes)
	}
	file, diags := hclsyntax.ParseConfig(data, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("vaultboot: parse config: %s", hcldiag.Join(diags))
	}
	cfg := &Config{}
	if diags := gohcl.DecodeBody(file.Body, nil, cfg); diags.HasErrors() {
		return nil, fmt.Errorf("vaultboot: invalid config: %s", hcldiag.Join(diags))
	}
	cfg.file = filename
	if body, ok := file.Body.(*hclsyntax.Body); ok {
		cfg.ranges = keyRanges(body)
	}
	return cfg, nil
}

// keyRanges locates every key of a decoded file, named as problems name
// them: "state_dir", "vault" (the block), "vault.address", and
// "init.age_recipients[0]" for an element of a list written out.
func keyRanges(body *hclsyntax.Body) map[string]hcl.Range {
	ranges := map[string]hcl.Range{}
	addAttributes(ranges, "", body.Attributes)
	for _, b := range body.Blocks {
		ranges[b.Type] = b.DefRange()
		addAttributes(ranges, b.Type+".", b.Body.Attributes)
		// Nested blocks ("record_encryption.identity[0]") by their
		// place among the blocks of their type.
		count := map[string]int{}
		for _, nb := range b.Body.Blocks {
			key := fmt.Sprintf("%s.%s[%d]", b.Type, nb.Type, count[nb.Type])
			count[nb.Type]++
			ranges[key] = nb.DefRange()
			addAttributes(ranges, key+".", nb.Body.Attributes)
		}
	}
	return ranges
}

func addAttributes(ranges map[string]hcl.Range, prefix string, attrs hclsyntax.Attributes) {
	for name, a := range attrs {
		key := prefix + name
		ranges[key] = a.SrcRange
		if tuple, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok {
			for i, e := range tuple.Exprs {
				ranges[fmt.Sprintf("%s[%d]", key, i)] = e.Range()
			}
		}
	}
}
