package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// The demo's last phase: a message from every site reaches the cloud.

// waitMessages waits until the demo broker's consumer has logged a message
// from every site's workloads.
func (r *Runner) waitMessages(ctx context.Context) error {
	refs := r.services(render.KindKafka, "")
	if r.cfg.Host != "" {
		r.logf("      real host: the sites come up on their own hosts; see %s", filepath.Join(r.cfg.Root, "kafka", "messages.log"))
		return nil
	}
	if len(refs) == 0 {
		r.logf("      external Kafka: nothing to wait for")
		return nil
	}
	logPath := filepath.Join(refs[0].s.DataDir, "messages.log")
	want := map[string]bool{}
	for _, s := range r.top.Sites {
		for _, w := range s.Workloads {
			if w.Kind == topology.KindDeepStream {
				want[render.WorkloadID(r.top.TrustDomain, s.Name, w.Name)] = true
			}
		}
	}
	return poll(r.cfg.StepTimeout, func() error {
		got, err := ConsumedFrom(logPath)
		if err != nil {
			return err
		}
		var missing []string
		for id := range want {
			if got[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no message yet from %s", strings.Join(missing, ", "))
		}
		for id := range want {
			r.logf("      %d message(s) from %s consumed in the cloud over mTLS", got[id], id)
		}
		return nil
	})
}

// ConsumedFrom counts the messages in the demo broker's consumer log by
// the SPIFFE ID of the client that produced them.
func ConsumedFrom(logPath string) (map[string]int, error) {
	data, err := os.ReadFile(logPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		var m struct {
			Producer string `json:"producer"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Producer != "" {
			out[m.Producer]++
		}
	}
	return out, nil
}
