package vaultboot

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/internal/hcldiag"
)

// TestConfigErrorRanges checks that every problem carries the source range
// of its key: the key itself, the list element, the block for a key left
// out, and just the file for a block left out.
func TestConfigErrorRanges(t *testing.T) {
	text := `state_dir = "s"
vault {
  address      = "127.0.0.1:8200"
  wait_timeout = "soon"
}
init {
  secret_shares    = 3
  secret_threshold = 2
  insecure_plaintext_shares = true
}
spire_upstream {
  bound_cidrs = ["10.0.0.0/8",
    "10.0.0.0/33"]
}
pki_intermediate {
  path = "pki"
}
`
	cfg, err := Parse("r.hcl", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	_, err = buildConfig(cfg)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *ConfigError", err)
	}
	want := map[string][2]int{ // key: line, column
		"vault.address":                 {3, 3},
		"vault.wait_timeout":            {4, 3},
		"spire_upstream.bound_cidrs[1]": {13, 5},
		"pki_intermediate.path":         {16, 3},
		// A default at fault: the block's place.
		"pki_root.issuing_certificates[0]": {0, 0},
	}
	got := map[string][2]int{}
	for _, p := range ce.Problems {
		if p.Range.Filename != "r.hcl" {
			t.Errorf("%s: range in %q, want r.hcl", p.Key, p.Range.Filename)
		}
		got[p.Key] = [2]int{p.Range.Start.Line, p.Range.Start.Column}
	}
	for key, w := range want {
		g, ok := got[key]
		if !ok {
			t.Errorf("no problem at %s; problems: %v", key, err)
			continue
		}
		if g != w {
			t.Errorf("%s at line %d column %d, want %d:%d", key, g[0], g[1], w[0], w[1])
		}
	}
	joined := hcldiag.Join(ce.Diagnostics())
	for _, w := range []string{"r.hcl:3,3-", "vault.address: must be an http:// or https:// URL", "r.hcl:13,5-"} {
		if !strings.Contains(joined, w) {
			t.Errorf("diagnostics %q lack %q", joined, w)
		}
	}
	// The text is the one users have always seen: file, key, message.
	if !strings.HasPrefix(err.Error(), "vaultboot: invalid config: r.hcl: vault.address: must be") {
		t.Errorf("error text %q", err)
	}
}

func TestRangeOfFallsBackToBlockThenFile(t *testing.T) {
	cfg, err := Parse("f.hcl", []byte("state_dir = \"s\"\nvault {\n  address = \"http://a\"\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := &problems{file: "f.hcl", ranges: cfg.ranges}
	if r := p.rangeOf("vault.request_timeout"); r.Start.Line != 2 {
		t.Errorf("key left out of a block: line %d, want the block's, 2", r.Start.Line)
	}
	if r := p.rangeOf("audit.file_path"); r.Filename != "f.hcl" || r.Start.Line != 0 {
		t.Errorf("block left out: %v, want just the file", r)
	}
}
