package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// EntriesFile is where a server's host gets the registration entries that
// server holds, in the format of `spire-server entry create -data`, for
// people who run the rendered configs without `edgeid up`:
//
//	spire-server entry create -socketPath <root>/run/private/server.sock \
//	    -data <root>/spire/entries.json
//
// or, converging like `edgeid up` (entries that exist are kept or updated,
// ones whose selectors changed replaced),
// `edgeid register --entries <root>/spire/entries.json`.
// `edgeid up` registers the same entries itself.
const EntriesFile = "spire/entries.json"

type entriesJSON struct {
	Entries []entryJSON `json:"entries"`
}

type entryJSON struct {
	Selectors   []selectorJSON `json:"selectors"`
	ParentID    string         `json:"parent_id"`
	SPIFFEID    string         `json:"spiffe_id"`
	X509SVIDTTL int64          `json:"x509_svid_ttl,omitempty"`
	DNSNames    []string       `json:"dns_names,omitempty"`
	Downstream  bool           `json:"downstream,omitempty"`
}

type selectorJSON struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// addEntryFiles writes, on each host that runs a server holding entries,
// EntriesFile with those entries.
func (b *builder) addEntryFiles() error {
	byHost := map[string][]entryJSON{}
	var order []string
	for _, e := range b.plan.Entries {
		host, _, _ := strings.Cut(e.Server, "/")
		j := entryJSON{ParentID: e.ParentID, SPIFFEID: e.SPIFFEID, X509SVIDTTL: int64(e.X509TTL.Seconds()),
			DNSNames: e.DNSNames, Downstream: e.Downstream}
		for _, s := range e.Selectors {
			typ, value, ok := strings.Cut(s, ":")
			if !ok {
				return fmt.Errorf("render: entry %s: selector %q is not type:value", e.SPIFFEID, s)
			}
			j.Selectors = append(j.Selectors, selectorJSON{Type: typ, Value: value})
		}
		if _, seen := byHost[host]; !seen {
			order = append(order, host)
		}
		byHost[host] = append(byHost[host], j)
	}
	for _, name := range order {
		data, err := json.MarshalIndent(entriesJSON{Entries: byHost[name]}, "", "  ")
		if err != nil {
			return fmt.Errorf("render: entries of %s: %w", name, err)
		}
		h := b.host(name)
		h.addFile(h.path(EntriesFile), append(data, '\n'), 0o600)
	}
	return nil
}

// maxEntriesFile bounds what ReadEntriesFile reads.
const maxEntriesFile = 16 << 20

// ReadEntriesFile reads an EntriesFile (the `spire-server entry create
// -data` format, the fields render writes) back into entries. Unknown
// fields, malformed SPIFFE IDs and selectors are errors that name the entry.
func ReadEntriesFile(path string) ([]Entry, error) {
	data, err := fsutil.ReadFileLimited(path, maxEntriesFile)
	if err != nil {
		return nil, fmt.Errorf("render: entries: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var file entriesJSON
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("render: entries file %s: %w", path, err)
	}
	out := make([]Entry, 0, len(file.Entries))
	for i, j := range file.Entries {
		where := fmt.Sprintf("render: entries file %s: entry %d", path, i+1)
		if _, err := spiffeid.FromString(j.SPIFFEID); err != nil {
			return nil, fmt.Errorf("%s: spiffe_id: %w", where, err)
		}
		if _, err := spiffeid.FromString(j.ParentID); err != nil {
			return nil, fmt.Errorf("%s (%s): parent_id: %w", where, j.SPIFFEID, err)
		}
		if len(j.Selectors) == 0 {
			return nil, fmt.Errorf("%s (%s): no selectors", where, j.SPIFFEID)
		}
		if j.X509SVIDTTL < 0 {
			return nil, fmt.Errorf("%s (%s): x509_svid_ttl is negative", where, j.SPIFFEID)
		}
		e := Entry{ParentID: j.ParentID, SPIFFEID: j.SPIFFEID, X509TTL: time.Duration(j.X509SVIDTTL) * time.Second,
			Downstream: j.Downstream, DNSNames: j.DNSNames}
		for _, sel := range j.Selectors {
			if sel.Type == "" || sel.Value == "" {
				return nil, fmt.Errorf("%s (%s): selector %q:%q needs a type and a value", where, j.SPIFFEID, sel.Type, sel.Value)
			}
			e.Selectors = append(e.Selectors, sel.Type+":"+sel.Value)
		}
		out = append(out, e)
	}
	return out, nil
}
