package render

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/edgeid/edgeid/plugins/common/deepstream"
)

// renderPipelineConfig adapts a DeepStream app config to the host it runs
// on: every enabled message-broker sink and message consumer is pointed at
// the Kafka bootstrap address (DeepStream's "host;port" form) and at the
// cfg_kafka.txt that edgeid-helper keeps fresh. Everything else, comments
// included, is kept as written. It returns the new config and the topics
// its sinks publish to.
//
// The result is what gets registered by hash (deepstream:config_sha256), so
// a pipeline whose config is changed on the host loses its identity.
func renderPipelineConfig(src []byte, kafkaAddr, cfgKafkaPath string) ([]byte, []string, error) {
	kf, err := deepstream.Parse(src, deepstream.DefaultLimits)
	if err != nil {
		return nil, nil, err
	}
	app, err := deepstream.ParseApp(kf)
	if err != nil {
		return nil, nil, err
	}
	if len(app.Sinks) == 0 {
		return nil, nil, fmt.Errorf("no enabled message-broker sink (a [sinkN] group with type=6)")
	}
	rewrite := map[string]map[string]string{}
	connStr := strings.Replace(strings.Split(kafkaAddr, ",")[0], ":", ";", 1)
	var topics []string
	for _, s := range app.Sinks {
		if s.Topic == "" {
			return nil, nil, fmt.Errorf("[%s] has no topic", s.Group)
		}
		topics = append(topics, s.Topic)
		rewrite[s.Group] = map[string]string{"msg-broker-conn-str": connStr, "msg-broker-config": cfgKafkaPath}
	}
	for _, c := range app.Consumers {
		rewrite[c.Group] = map[string]string{"conn-str": connStr, "config-file": cfgKafkaPath}
	}

	var out bytes.Buffer
	group := ""
	seen := map[string]map[string]bool{}
	lines := strings.SplitAfter(string(src), "\n")
	flush := func() {
		// Add keys the group lacked, at the end of the group, in a fixed
		// order so the rendered file (and its hash) is reproducible.
		for _, key := range []string{"msg-broker-conn-str", "msg-broker-config", "conn-str", "config-file"} {
			val, ok := rewrite[group][key]
			if !ok || seen[group][key] {
				continue
			}
			if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
				out.WriteByte('\n')
			}
			fmt.Fprintf(&out, "%s=%s\n", key, val)
		}
	}
	for _, line := range lines {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "[") && strings.HasSuffix(trimmed, "]") {
			flush()
			group = strings.TrimSpace(trimmed[1 : len(trimmed)-1])
			out.WriteString(line)
			continue
		}
		if key, _, ok := strings.Cut(trimmed, "="); ok && !strings.HasPrefix(trimmed, "#") {
			key = strings.TrimSpace(key)
			if val, ok := rewrite[group][key]; ok {
				if seen[group] == nil {
					seen[group] = map[string]bool{}
				}
				seen[group][key] = true
				fmt.Fprintf(&out, "%s=%s\n", key, val)
				continue
			}
		}
		out.WriteString(line)
	}
	flush()
	return out.Bytes(), topics, nil
}
