// Package ui serves edgeid's live trust-tree page: the Vault root and
// intermediate, the cloud CA and each site's CA, the agents and workloads
// with their SPIFFE IDs, serials and expiry, every process's health, and
// the demo's Kafka messages per site.
//
// One poller reads a Source (the runner's status) every Interval and
// pushes each changed snapshot to every browser over server-sent events
// (GET /events); GET /api/status returns the latest snapshot as JSON and
// GET / the page, plain HTML and JavaScript embedded in the binary.
//
//	Source ──poll──▶ Server (latest snapshot, rotation times)
//	                   ├─ /events      text/event-stream, one "status" event per change
//	                   ├─ /api/status  JSON
//	                   └─ /            index.html, app.js, style.css (embed)
//
// The page has no login: it binds loopback by default (see CheckListen)
// and, unless remote access is allowed, answers only requests whose Host
// is a loopback name, so a web page elsewhere cannot read it through DNS
// rebinding.
package ui
