package hcldiag

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestJoinNamesPlaceAndSkipsWarnings(t *testing.T) {
	rng := &hcl.Range{Filename: "helper.conf", Start: hcl.Pos{Line: 3, Column: 1}, End: hcl.Pos{Line: 3, Column: 9}}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Unsupported argument", Detail: `An argument named "cert_dri" is not expected here.`, Subject: rng},
		{Severity: hcl.DiagWarning, Summary: "Deprecated", Subject: rng},
		{Severity: hcl.DiagError, Summary: "Missing required argument"},
	}
	want := `helper.conf:3,1-9: Unsupported argument; An argument named "cert_dri" is not expected here.; Missing required argument`
	if got := Join(diags); got != want {
		t.Errorf("Join = %q\nwant   %q", got, want)
	}
	if got := Join(nil); got != "" {
		t.Errorf("Join(nil) = %q, want empty", got)
	}
}
