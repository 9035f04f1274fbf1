package kubeedge

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParseDenyList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		nodes   map[string]int
		serials map[string]int
		err     string
	}{
		{name: "empty file", in: "", nodes: map[string]int{}, serials: map[string]int{}},
		{name: "comments and blank lines only", in: "# nothing yet\n\n   \t\n# still nothing\n", nodes: map[string]int{}, serials: map[string]int{}},
		{name: "entries with comments, tabs, CRLF and no final newline",
			in:      "# lost on 2026-12-01\nnode edge-lost-0042   # stolen truck\r\n\tserial\t5C:0F:FE:E1\nnode Edge-Upper.Site-A\nserial 0x00ff",
			nodes:   map[string]int{"edge-lost-0042": 2, "edge-upper.site-a": 4},
			serials: map[string]int{"5c0ffee1": 3, "ff": 5}},
		{name: "duplicates keep their first line", in: "node a\nnode A\nserial 1\nserial 01\n",
			nodes: map[string]int{"a": 1}, serials: map[string]int{"1": 3}},
		{name: "unknown kind", in: "nodes edge-1\n", err: `line 1: unknown entry kind "nodes" (want "node" or "serial")`},
		{name: "kind alone", in: "\n\nnode\n", err: `line 3: want "node <name>" or "serial <hex>", got 1 fields`},
		{name: "two values", in: "node edge-1 edge-2\n", err: `line 1: want "node <name>" or "serial <hex>", got 3 fields`},
		{name: "value without kind after a comment", in: "# c\nedge-1\n", err: `line 2: want "node <name>" or "serial <hex>", got 1 fields`},
		{name: "invalid node name", in: "node edge_1\n", err: `line 1: node name "edge_1" is not a valid Kubernetes node name (a DNS-1123 subdomain: at most 253 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)`},
		{name: "node name too long", in: "node " + strings.Repeat("a", 254) + "\n", err: `line 1: node name "` + strings.Repeat("a", 254) + `" is not a valid Kubernetes node name (a DNS-1123 subdomain: at most 253 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)`},
		{name: "non-ASCII node name is not lowercased into validity", in: "node \u212aelvin\n", err: `line 1: node name "` + "\u212a" + `elvin" is not a valid Kubernetes node name (a DNS-1123 subdomain: at most 253 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)`},
		{name: "invalid serial", in: "serial xyz\n", err: `line 1: serial "xyz" is not a hexadecimal number`},
		{name: "negative serial", in: "serial -5\n", err: `line 1: serial "-5" is not a hexadecimal number`},
		{name: "control character", in: "node edge-1\x00\n", err: `line 1: control character '\x00' at column 12`},
		{name: "invalid UTF-8 even in a comment", in: "node edge-1 # \xff\n", err: `line 1: not valid UTF-8`},
		{name: "line too long", in: "node edge-1 #" + strings.Repeat("x", 1100) + "\n", err: `line 1: line is 1113 bytes, over the 1024 byte limit`},
		{name: "every bad line is named", in: "node ok-1\nnode BAD_1\nserial ok\nbogus x\nnode ok-2\nserial zz\n",
			err: `line 2: node name "BAD_1" is not a valid Kubernetes node name (a DNS-1123 subdomain: at most 253 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit); ` +
				`line 3: serial "ok" is not a hexadecimal number; line 4: unknown entry kind "bogus" (want "node" or "serial"); line 6: serial "zz" is not a hexadecimal number`},
		{name: "bad lines past 50 are counted", in: strings.Repeat("x\n", 53), err: "and 3 more bad lines"},
		{name: "file too large", in: strings.Repeat("# padding padding padding\n", maxDenyListBytes/26+1), err: fmt.Sprintf("file is %d bytes, over the 1048576 byte limit", (maxDenyListBytes/26+1)*26)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := parseDenyList([]byte(tt.in))
			if tt.err != "" {
				if list != nil || err == nil {
					t.Fatalf("got list %v, err %v; want error %q", list, err, tt.err)
				}
				if strings.HasPrefix(tt.err, "and ") {
					if !strings.HasSuffix(err.Error(), tt.err) || strings.Count(err.Error(), "line ") != 50 {
						t.Fatalf("error %q: want 50 named lines then %q", err, tt.err)
					}
					return
				}
				if err.Error() != tt.err {
					t.Fatalf("error %q\nwant  %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(list.nodes, tt.nodes) || !maps.Equal(list.serials, tt.serials) {
				t.Fatalf("got nodes %v serials %v, want %v %v", list.nodes, list.serials, tt.nodes, tt.serials)
			}
		})
	}
}

// writeAtomic replaces path the way an operator (or a ConfigMap update)
// should: a new file renamed over the old one.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestDenyListFile runs a plugin with deny_list_file through edits of the
// file, attesting after each, with the exact outcome and log.
func TestDenyListFile(t *testing.T) {
	f := newFixture(t)
	node1, node2 := f.issue("edge-node-1"), f.issue("edge-node-2")
	serial2 := node2.Certificate.SerialNumber.Text(16)
	path := filepath.Join(t.TempDir(), "deny.txt")
	writeAtomic(t, path, "# nobody yet\n")
	p, client, cfgClient, logs := serveLogged(t)
	p.hooks.now = func() time.Time { return f.now }
	if err := configure(cfgClient, f.hcl(fmt.Sprintf("deny_list_file = %q\ndeny_list_check_interval = \"1h\"\n", path))); err != nil {
		t.Fatal(err)
	}
	if n := len(logs.find(t, "info", "Deny list file loaded")); n != 1 {
		t.Fatalf("%d 'Deny list file loaded' records, want 1", n)
	}
	const unusable = "Deny list file is unusable; keeping the last good list"

	steps := []struct {
		name  string
		edit  func()
		node1 string // "" = attests, else the exact PermissionDenied message
		node2 string
		// logged is the message the edit must log once (at the first
		// attestation after it), with its level.
		level, logged, errorField string
	}{
		{name: "empty list", edit: func() {}},
		{name: "a node is added (uppercase in the file)", edit: func() { writeAtomic(t, path, "# lost\nnode EDGE-NODE-1\n") },
			node1: `node "edge-node-1" is on the deny list (deny_list_file line 2)`, level: "info", logged: "Deny list file reloaded"},
		{name: "a malformed file keeps the last good list", edit: func() { writeAtomic(t, path, "nodes edge-node-2\nnode edge_node_2\n") },
			node1: `node "edge-node-1" is on the deny list (deny_list_file line 2)`, level: "error", logged: unusable,
			errorField: `line 1: unknown entry kind "nodes" (want "node" or "serial"); line 2: node name "edge_node_2" is not a valid Kubernetes node name (a DNS-1123 subdomain: at most 253 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)`},
		{name: "the bad file is not re-read or re-logged while it is unchanged", edit: func() {},
			node1: `node "edge-node-1" is on the deny list (deny_list_file line 2)`},
		{name: "a fixed file replaces the list: a serial instead of the name", edit: func() { writeAtomic(t, path, "serial "+strings.ToUpper(serial2)+"\n") },
			node2: "node certificate serial " + serial2 + " is on the deny list (deny_list_file line 1)", level: "info", logged: "Deny list file reloaded"},
		{name: "a deleted file keeps the last good list", edit: func() { os.Remove(path) },
			node2: "node certificate serial " + serial2 + " is on the deny list (deny_list_file line 1)", level: "error", logged: unusable,
			errorField: "stat " + path + ": no such file or directory"},
		{name: "an edit in place (same inode) is seen", edit: func() {
			os.WriteFile(path, []byte("node edge-node-2\n"), 0o644)
		}, node2: `node "edge-node-2" is on the deny list (deny_list_file line 1)`, level: "info", logged: "Deny list file reloaded"},
		{name: "an in-place edit of the same size is seen", edit: func() {
			// Same length as before; mtime may not even move on a coarse
			// clock, the ctime and content still do.
			os.WriteFile(path, []byte("node edge-node-1\n"), 0o644)
			later := time.Now().Add(time.Hour)
			os.Chtimes(path, later, later)
		}, node1: `node "edge-node-1" is on the deny list (deny_list_file line 1)`, level: "info", logged: "Deny list file reloaded"},
		{name: "emptied on purpose: everyone attests", edit: func() { writeAtomic(t, path, "") }, level: "info", logged: "Deny list file reloaded"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before := len(logs.records(t))
			s.edit()
			for name, want := range map[string]string{"edge-node-1": s.node1, "edge-node-2": s.node2} {
				creds := node1
				if name == "edge-node-2" {
					creds = node2
				}
				_, _, err := goodAgent(creds, f.now).run(t, client)
				switch st := status.Convert(err); {
				case want == "" && err != nil:
					t.Errorf("%s: refused (%v), want it to attest", name, err)
				case want != "" && (st.Code() != codes.PermissionDenied || st.Message() != want):
					t.Errorf("%s: got %v %q, want PermissionDenied %q", name, st.Code(), st.Message(), want)
				}
			}
			var fresh []logRecord
			for _, r := range logs.records(t)[before:] {
				if strings.HasPrefix(r["@message"].(string), "Deny list file") {
					fresh = append(fresh, r)
				}
			}
			if s.logged == "" {
				if len(fresh) != 0 {
					t.Fatalf("unexpected deny-list log records: %v", fresh)
				}
				return
			}
			if len(fresh) != 1 || fresh[0]["@level"] != s.level || fresh[0]["@message"] != s.logged {
				t.Fatalf("deny-list log records %v, want one %s %q", fresh, s.level, s.logged)
			}
			if s.errorField != "" && fresh[0]["error"] != s.errorField {
				t.Fatalf("logged error %q\nwant           %q", fresh[0]["error"], s.errorField)
			}
		})
	}
	// Each refusal is in the plugin's log with the node it refused (the
	// deny lists refuse before the challenge, where no key was proven).
	found := false
	for _, r := range logs.find(t, "warn", "Node attestation failed") {
		if r["node_name"] == "edge-node-1" && r["reason"] == `node "edge-node-1" is on the deny list (deny_list_file line 2)` && r["cert_serial"] == node1.Certificate.SerialNumber.Text(16) {
			found = true
		}
	}
	if !found {
		t.Errorf("no 'Node attestation failed' record for the denied edge-node-1; log: %v", logs.find(t, "warn", "Node attestation failed"))
	}
}

// TestDenyListFileWatcher: with no attestation at all, the background
// check picks up a change within deny_list_check_interval and logs it.
func TestDenyListFileWatcher(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(t.TempDir(), "deny.txt")
	writeAtomic(t, path, "node edge-node-1\n")
	_, _, cfgClient, logs := serveLogged(t)
	if err := configure(cfgClient, f.hcl(fmt.Sprintf("deny_list_file = %q\ndeny_list_check_interval = \"50ms\"\n", path))); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, path, "node edge-node-1\nnode edge-node-2 extra\n")
	deadline := time.Now().Add(5 * time.Second)
	for len(logs.find(t, "error", "Deny list file is unusable; keeping the last good list")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged within 5s of a malformed edit; log: %v", logs.records(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A second Configure, with another file, stops the first state's
	// watcher: a later bad edit of the first file is never reported.
	other := filepath.Join(filepath.Dir(path), "other.txt")
	writeAtomic(t, other, "")
	if err := configure(cfgClient, f.hcl(fmt.Sprintf("deny_list_file = %q\ndeny_list_check_interval = \"50ms\"\n", other))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let a watcher that is mid-tick finish
	reports := func() int {
		n := 0
		for _, r := range logs.find(t, "error", "Deny list file is unusable; keeping the last good list") {
			if r["path"] == path {
				n++
			}
		}
		return n
	}
	before := reports()
	writeAtomic(t, path, "garbage\n")
	time.Sleep(500 * time.Millisecond) // ten ticks of the old watcher
	if after := reports(); after != before {
		t.Fatalf("the first configuration's watcher still runs: %d new reports about %s", after-before, path)
	}
}

// TestDenyListConfiguration covers the deny keys at Configure: exact
// InvalidArgument messages, and deny_node_names lowercased.
func TestDenyListConfiguration(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	writeAtomic(t, bad, "node ok\nnode not_ok\nserial\n")
	tests := []struct {
		name, extra, want string
	}{
		{"missing file", fmt.Sprintf("deny_list_file = %q", filepath.Join(dir, "none.txt")),
			"invalid configuration: deny_list_file " + filepath.Join(dir, "none.txt") + ": stat " + filepath.Join(dir, "none.txt") + ": no such file or directory"},
		{"malformed file names every bad line", fmt.Sprintf("deny_list_file = %q", bad),
			"invalid configuration: deny_list_file " + bad + `: line 2: node name "not_ok" is not a valid Kubernetes node name (a DNS-1123 subdomain: at most 253 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit); line 3: want "node <name>" or "serial <hex>", got 1 fields`},
		{"a directory", fmt.Sprintf("deny_list_file = %q", dir), "invalid configuration: deny_list_file " + dir + ": " + dir + " is not a regular file"},
		{"interval without file", `deny_list_check_interval = "5s"`, "invalid configuration: deny_list_check_interval is set but deny_list_file is not"},
		{"bad interval", fmt.Sprintf("deny_list_file = %q\ndeny_list_check_interval = \"0s\"", bad), `invalid configuration: deny_list_check_interval "0s" must be a positive duration such as "30s"`},
		{"invalid deny_node_names", `deny_node_names = ["edge-1", "edge_2", ""]`,
			`invalid configuration: deny_node_names: node name "edge_2" is not a valid Kubernetes node name (a DNS-1123 subdomain: at most 253 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit); deny_node_names: node name "" is not a valid Kubernetes node name (a DNS-1123 subdomain: at most 253 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)`},
		{"negative staleness", `node_check_max_staleness = "-1s"`, `invalid configuration: node_check_max_staleness "-1s" must be a duration such as "1h", or "0s" to turn it off`},
		{"staleness with the check disabled", "kubernetes_check = \"disabled\"\nnode_check_max_staleness = \"1m\"", `invalid configuration: node_check_max_staleness is set but kubernetes_check is "disabled"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, cfgClient, _ := serveLogged(t)
			err := configure(cfgClient, f.hcl(tt.extra))
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != tt.want {
				t.Fatalf("got %v %q\nwant InvalidArgument %q", st.Code(), st.Message(), tt.want)
			}
		})
	}

	// deny_node_names is compared lowercase, as Node names are.
	_, client := f.load(f.hcl(`deny_node_names = ["Edge-Node-1"]`))
	_, _, err := goodAgent(f.issue("edge-node-1"), f.now).run(t, client)
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != `node "edge-node-1" is on the deny list` {
		t.Fatalf("uppercase deny_node_names entry: got %v", err)
	}
	cfg, cfgStatus := buildConfig(configRequest(testTD, f.hcl(`deny_node_names = ["Edge-Node-1", "b.Example"]`)))
	if err := cfgStatus.Err(); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(cfg.denyNodeNames)); !slices.Equal(got, []string{"b.example", "edge-node-1"}) {
		t.Fatalf("deny_node_names stored as %q", got)
	}
}
