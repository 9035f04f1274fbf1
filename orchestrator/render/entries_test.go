package render

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Every entry of the plan comes back from the entries file of its server's
// host, field for field.
func TestEntriesFileRoundTrip(t *testing.T) {
	plan := samplePlan(t)
	out := t.TempDir()
	if _, err := WriteBundle(plan, out, ""); err != nil {
		t.Fatal(err)
	}
	want := map[string][]Entry{}
	for _, e := range plan.Entries {
		host, _, _ := strings.Cut(e.Server, "/")
		// What the file does not carry: which server, and labels for status.
		e.Server, e.Site, e.Workload = "", "", ""
		want[host] = append(want[host], e)
	}
	for host, entries := range want {
		got, err := ReadEntriesFile(filepath.Join(out, host, DefaultHostRoot, EntriesFile))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, entries) {
			t.Errorf("%s: read back\n%+v\nwant\n%+v", host, got, entries)
		}
	}
}

func TestReadEntriesFileRejectsBadInput(t *testing.T) {
	const good = `{"selectors":[{"type":"unix","value":"uid:0"}],"parent_id":"spiffe://example.org/agent","spiffe_id":"spiffe://example.org/app"`
	for _, tc := range []struct {
		name, data, want string
	}{
		{"not json", `entries: []`, "invalid character"},
		{"unknown field", `{"entries":[` + good + `,"admin":true}]}`, `unknown field "admin"`},
		{"bad spiffe id", `{"entries":[{"selectors":[{"type":"unix","value":"uid:0"}],"parent_id":"spiffe://example.org/agent","spiffe_id":"http://example.org/app"}]}`, "entry 1: spiffe_id"},
		{"bad parent", `{"entries":[` + good + `},{"selectors":[{"type":"unix","value":"uid:0"}],"parent_id":"agent","spiffe_id":"spiffe://example.org/b"}]}`, "entry 2 (spiffe://example.org/b): parent_id"},
		{"no selectors", `{"entries":[{"selectors":[],"parent_id":"spiffe://example.org/agent","spiffe_id":"spiffe://example.org/app"}]}`, "no selectors"},
		{"empty selector value", `{"entries":[{"selectors":[{"type":"unix","value":""}],"parent_id":"spiffe://example.org/agent","spiffe_id":"spiffe://example.org/app"}]}`, "needs a type and a value"},
		{"negative ttl", `{"entries":[` + good + `,"x509_svid_ttl":-1}]}`, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "entries.json")
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadEntriesFile(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, path, tc.want)
			}
		})
	}
}
