package render

import (
	"encoding/json"
	"fmt"
	"strings"
)

// EntriesFile is where a server's host gets the registration entries that
// server holds, in the format of `spire-server entry create -data`, for
// people who run the rendered configs without `edgeid up`:
//
//	spire-server entry create -socketPath <root>/run/private/server.sock \
//	    -data <root>/spire/entries.json
//
// `edgeid up` registers the same entries itself (and checks which exist).
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
