// Package pluginconf builds the configuration of an edgeid SPIRE plugin
// from the Configure or Validate request SPIRE sends: the core
// configuration (the trust domain) and the plugin_data block, re-printed as
// HCL text.
//
// Every plugin builds its configuration the same way, in the manner of
// SPIRE's own pkg/common/pluginconf:
//
//	func (c *Config) BuildConfig(core pluginconf.Core, s *pluginconf.Status) *configuration {
//		out := &configuration{}
//		c.buildTimeouts(out, s) // one method per area, each reporting to s
//		...
//		return out
//	}
//
//	cfg, st := pluginconf.Build(req, new(Config))
//	if err := st.Err(); err != nil { ... }  // Configure
//	return st.ValidateResponse(), nil      // Validate
//
// Build decodes the HCL with Decode, so unknown keys, type mismatches and
// syntax errors are reported the same way everywhere: with the key and the
// line, as an InvalidArgument status. The plugin's BuildConfig then reports
// every problem it finds to the Status, which turns them into one
// InvalidArgument error naming all of them. Status.Duration is the one
// parser of duration keys.
package pluginconf
