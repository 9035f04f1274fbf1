// Package cli implements the `bootstrap vault` command: it loads the
// bootstrap configuration, runs the Vault bootstrap with progress lines on
// standard error, and prints the JSON summary on standard output.
//
// The edgeid CLI dispatches `edgeid bootstrap vault ...` to Run; the
// edgeid-bootstrap binary calls it directly.
package cli
