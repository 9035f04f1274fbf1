// Package hcldiag turns HCL diagnostics into the one-line errors every
// edgeid configuration reader (plugins, the Vault bootstrap, the helper)
// reports.
package hcldiag

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
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
