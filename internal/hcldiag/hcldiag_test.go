package hcldiag

import (
	"os"
	"path/filepath"
	"strings"
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

func TestDecodeAndReadFile(t *testing.T) {
	var v struct {
		Name string `hcl:"name"`
	}
	if ps, err := Decode("x", []byte("name = \"a\"\n"), "f.hcl", 100, &v); err != nil || len(ps) != 0 || v.Name != "a" {
		t.Fatalf("decode: %v %v %q", ps, err, v.Name)
	}
	ps, err := Decode("x", []byte("nme = \"a\"\n"), "f.hcl", 100, &v)
	if err != nil || len(ps) == 0 || ps[0].Range.Filename != "f.hcl" || !strings.Contains(Format("x", ps), "f.hcl:1,1: ") {
		t.Fatalf("unknown key: %v %v", ps, err)
	}
	if _, err := Decode("x", make([]byte, 101), "f.hcl", 100, &v); err == nil || !strings.Contains(err.Error(), "x: f.hcl is 101 bytes, over the 100 byte limit") {
		t.Fatalf("too large: %v", err)
	}
	path := filepath.Join(t.TempDir(), "big.hcl")
	if err := os.WriteFile(path, make([]byte, 101), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile("x", path, 100); err == nil || !strings.Contains(err.Error(), "over the 100 byte limit") {
		t.Fatalf("ReadFile too large: %v", err)
	}
}
