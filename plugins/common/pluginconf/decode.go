package pluginconf

import (
	"github.com/edgeid/edgeid/internal/hcldiag"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxConfigBytes bounds the size of a plugin configuration. SPIRE reads the
// configuration from an operator-owned file, but a plugin still treats it as
// untrusted input.
const MaxConfigBytes = 1 << 20

// Decode parses hclText as HCL native syntax and decodes it into target, a
// pointer to a struct with `hcl:"name,attr"`, `hcl:"name,optional"` or
// `hcl:"name,block"` tags. Keys that target does not declare are errors.
//
// The returned error is an InvalidArgument status whose message names each
// offending key with its line, for example
// `plugin_data:3,1-9: Unsupported argument; An argument named "vault_adr" is not expected here.`
func Decode(hclText string, target any) error {
	if len(hclText) > MaxConfigBytes {
		return status.Errorf(codes.InvalidArgument, "plugin configuration is %d bytes, over the %d byte limit", len(hclText), MaxConfigBytes)
	}
	file, diags := hclsyntax.ParseConfig([]byte(hclText), "plugin_data", hcl.InitialPos)
	if diags.HasErrors() {
		return status.Errorf(codes.InvalidArgument, "unable to parse plugin configuration: %s", hcldiag.Join(diags))
	}
	if diags := gohcl.DecodeBody(file.Body, nil, target); diags.HasErrors() {
		return status.Errorf(codes.InvalidArgument, "invalid plugin configuration: %s", hcldiag.Join(diags))
	}
	return nil
}
