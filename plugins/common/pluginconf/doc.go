// Package pluginconf decodes the HCL that SPIRE hands an external plugin in
// its Configure request (the plugin_data block, re-printed as text).
//
// Every edgeid plugin decodes its configuration through Decode, so unknown
// keys, type mismatches and syntax errors are reported the same way
// everywhere: with the key and the line, as an InvalidArgument status.
package pluginconf
