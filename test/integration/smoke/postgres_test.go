package smoke

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/test/harness"
)

// TestTwoServersShareAPostgresDatastore runs two real SPIRE servers on one
// real PostgreSQL (SPIRE's HA mode): an entry created through one server is
// listed by the other.
func TestTwoServersShareAPostgresDatastore(t *testing.T) {
	pg := harness.StartPostgres(t)
	ds := fmt.Sprintf(`    DataStore "sql" {
        plugin_data {
            database_type = "postgres"
            connection_string = %q
        }
    }`, pg.DSN)
	a := harness.StartSpireServer(t, harness.ServerConfig{DataStore: ds, Name: "spire-server-a"})
	b := harness.StartSpireServer(t, harness.ServerConfig{DataStore: ds, Name: "spire-server-b"})

	id := "spiffe://example.org/ha/shared"
	a.CreateEntry(t, harness.Entry{ParentID: "spiffe://example.org/ha/parent", SPIFFEID: id, Selectors: []string{"unix:uid:1000"}})
	out := b.CLI(t, "entry", "show", "-spiffeID", id)
	if !strings.Contains(out, id) {
		t.Fatalf("server b does not see the entry created through server a:\n%s", out)
	}
}
