package config

import (
	"os"
	"reflect"
	"regexp"
	"testing"
)

// TestSchemas: every block struct has tags the decoder can read, and each
// key of the reference table in helper/README.md is one of them.
func TestSchemas(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []reflect.Type{
		reflect.TypeFor[fileBody](), reflect.TypeFor[jwtEntry](), reflect.TypeFor[healthBlock](),
		reflect.TypeFor[pkcs12Block](), reflect.TypeFor[kafkaBlock](), reflect.TypeFor[tunnelBlock](), reflect.TypeFor[gatewayBlock](), reflect.TypeFor[encryptBlock](),
	} {
		for name := range schemaOf(typ).keys {
			if !regexp.MustCompile(`\b` + name + `\b`).Match(readme) {
				t.Errorf("%s: key %q is not in helper/README.md", typ.Name(), name)
			}
		}
	}
}
