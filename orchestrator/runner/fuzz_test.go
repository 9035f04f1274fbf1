package runner

import (
	"testing"

	"filippo.io/age"
)

// FuzzIdentityRecipients: the custodian scan reads any small file under
// the Vault host's root; whatever a file holds, it does not panic, and it
// reports only recipients of identities that are really in the file.
func FuzzIdentityRecipients(f *testing.F) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("# created: now\n" + id.String() + "\n"))
	f.Add([]byte("AGE-SECRET-KEY-1\nAGE-SECRET-KEY-1QQQQ\n\x00\xff"))
	f.Add([]byte("  " + id.String() + "  \r\nage1notanidentity\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, rec := range identityRecipients(data) {
			if _, err := age.ParseX25519Recipient(rec); err != nil {
				t.Fatalf("reported %q, not a recipient: %v", rec, err)
			}
		}
	})
}
