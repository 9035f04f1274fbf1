package ui

import (
	"strings"
	"time"

	"github.com/edgeid/edgeid/orchestrator/runner"
)

// Snapshot is what the page shows: the status and what the server adds.
type Snapshot struct {
	// Time is when the status was read.
	Time   time.Time      `json:"time"`
	Status *runner.Status `json:"status,omitempty"`
	// Error is why the status could not be read, when it could not.
	Error string `json:"error,omitempty"`
	// Rotations are when this server saw each certificate's serial change
	// (keyed as rotationKeys names them); certificates it has seen only
	// once have none.
	Rotations map[string]time.Time `json:"rotations"`
	// KafkaBySite counts the demo broker's consumed messages per edge
	// site (from the producers' SPIFFE IDs; "cloud" and others as is).
	KafkaBySite map[string]int `json:"kafka_by_site,omitempty"`
}

// rotations remembers the serial of every certificate of the tree and when
// it last changed.
type rotations struct {
	serials map[string]string
	changed map[string]time.Time
}

func newRotations() *rotations {
	return &rotations{serials: map[string]string{}, changed: map[string]time.Time{}}
}

// observe records st's serials at now and returns the rotation times.
func (r *rotations) observe(st *runner.Status, now time.Time) map[string]time.Time {
	for key, serial := range serialsOf(st) {
		if old, ok := r.serials[key]; ok && old != serial {
			r.changed[key] = now
		}
		r.serials[key] = serial
	}
	out := make(map[string]time.Time, len(r.changed))
	for k, v := range r.changed {
		out[k] = v
	}
	return out
}

// serialsOf names every certificate of st whose serial is known:
// vault:root, vault:intermediate, server:<host>:<addr> (a server's CA),
// agent:<SPIFFE ID>, workload:<SPIFFE ID>. The page uses the same keys.
func serialsOf(st *runner.Status) map[string]string {
	out := map[string]string{}
	if v := st.Vault; v != nil {
		if v.Root != nil {
			out["vault:root"] = v.Root.Serial
		}
		if v.Intermediate != nil {
			out["vault:intermediate"] = v.Intermediate.Serial
		}
	}
	server := func(s runner.ServerStatus) {
		if s.CA != nil {
			out["server:"+s.Host+":"+s.Addr] = s.CA.Serial
		}
		for _, a := range s.Agents {
			if a.Serial != "" {
				out["agent:"+a.ID] = a.Serial
			}
		}
	}
	for _, c := range st.Cloud {
		server(c)
	}
	for _, s := range st.Sites {
		server(s.Server)
		for _, w := range s.Workloads {
			if w.Serial != "" {
				out["workload:"+w.SPIFFEID] = w.Serial
			}
		}
	}
	return out
}

// kafkaBySite sums the demo broker's messages per producer site:
// spiffe://<td>/edge/<site>/... counts for <site>.
func kafkaBySite(st *runner.Status) map[string]int {
	if st.Kafka == nil {
		return nil
	}
	out := map[string]int{}
	for producer, n := range st.Kafka.Messages {
		site := producer
		if rest, ok := strings.CutPrefix(producer, "spiffe://"); ok {
			parts := strings.Split(rest, "/")
			switch {
			case len(parts) > 2 && parts[1] == "edge":
				site = parts[2]
			case len(parts) > 1 && parts[1] == "cloud":
				site = "cloud"
			}
		}
		out[site] += n
	}
	return out
}
