// Package render turns a validated topology into a plan: for every host,
// the files it needs (SPIRE server and agent configs with plugin_cmd and
// plugin_checksum, edgeid-helper configs, rendered DeepStream pipeline
// configs), the services it runs in start order, and the registration
// entries each SPIRE server needs. The same plan is written to per-host
// bundle directories by `edgeid render` and run as local processes by
// `edgeid up`.
package render
