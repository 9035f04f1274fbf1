// Package deepstream parses NVIDIA DeepStream application configuration
// files strictly and within fixed bounds.
//
// DeepStream reference apps (deepstream-app, deepstream-test5-app) read
// GLib GKeyFile ("INI") files: `[group]` headers, `key=value` lines, `#`
// comments, `;`-separated lists and the escapes `\s \n \t \r \\`. Parse
// accepts that grammar and is stricter than GLib where leniency would let two
// readers disagree about a file:
//
//   - the input must be valid UTF-8 without NUL or other control bytes;
//   - a group or a key may appear only once (GLib merges duplicate groups and
//     lets the last duplicate key win, so a second `topic=` could hide the
//     one a reviewer sees);
//   - every non-comment line is a group header or a key=value pair;
//   - the size of the file, the length of a line and the number of groups and
//     keys are bounded by Limits.
//
// On top of the generic KeyFile, App extracts what matters for identity: the
// message-broker sinks (`[sinkN]` with `type=6`), the message consumers
// (`[message-consumerN]`), and the model files referenced by the inference
// groups. BrokerConfig reads a protocol adaptor configuration such as
// `cfg_kafka.txt`.
//
// The package is shared by the deepstream WorkloadAttestor, the orchestrator
// and the test stand-in so they all read a pipeline config the same way.
package deepstream
