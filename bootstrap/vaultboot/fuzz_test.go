package vaultboot

import (
	"path/filepath"
	"testing"
)

// FuzzParseManifest: shares.json comes from the state directory; whatever
// it holds, parsing does not panic, and every file name it accepts stays a
// plain file directly inside the shares directory.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"version":1,"kind":"recovery","secret_shares":3,"secret_threshold":2,"encryption":"age","files":["share-1.age","share-2.age","share-3.age"],"recipients":[["age1x"]]}`))
	f.Add([]byte(`{"version":1,"secret_shares":1,"secret_threshold":1,"encryption":"plaintext","files":["share-1.plaintext"]}`))
	f.Add([]byte(`{"encryption":"pgp","kind":"unseal","files":["../x","/","."]}`))
	f.Add([]byte(`{"encryption":"age","files":["/"]}`))
	f.Add([]byte(`{"encryption":"age","kind":"other"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(data)
		if err != nil {
			return
		}
		const dir = "/state/recovery"
		for _, name := range m.Files {
			if p := filepath.Join(dir, name); filepath.Dir(p) != dir {
				t.Fatalf("file name %q escapes the shares directory: %s", name, p)
			}
		}
		if k := m.kind(); k != kindUnseal && k != kindRecovery {
			t.Fatalf("accepted kind %q", k)
		}
	})
}
