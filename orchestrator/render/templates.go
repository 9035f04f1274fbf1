package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"
)

var funcs = template.FuncMap{
	"q":   quote,
	"dur": func(d time.Duration) string { return quote(d.String()) },
	// list renders strings as the items of an HCL list.
	"list": func(items []string) string {
		q := make([]string, len(items))
		for i, s := range items {
			q[i] = quote(s)
		}
		return strings.Join(q, ", ")
	},
	// shareKey is the init block's key prefix for a kind of share.
	"shareKey": func(kind string) string {
		if kind == "recovery" {
			return "recovery"
		}
		return "secret"
	},
}

// quote renders s as a string literal that both HCL 1 (SPIRE's configs) and
// HCL 2 (edgeid's own) read back as s: Go's escapes are a subset of both,
// and "${" / "%{" are doubled so HCL 2 does not take them as templates.
func quote(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

func execute(t *template.Template, data any) []byte {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		// The templates are fixed and their data is typed: an error
		// here is a bug in this package, not bad input.
		panic(fmt.Sprintf("render: template %s: %v", t.Name(), err))
	}
	return buf.Bytes()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

const header = `# Rendered by edgeid from {{q .Topology}}; edit the topology, not this file.
`
