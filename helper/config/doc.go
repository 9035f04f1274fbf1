// Package config reads edgeid-helper's configuration file.
//
// The file is HCL. It accepts every key of spiffe-helper v0.11 with the same
// meaning and the same defaults, so an existing helper.conf loads unchanged,
// including the octal file modes of spiffe-helper's HCL 1 parser
// (cert_file_mode = 0644 means octal). The camelCase keys of older
// spiffe-helper releases, still used by the KubeEdge SPIRE example
// (agentAddress, cmdArgs, certDir, renewSignal, svidFileName, ...), load too
// and produce a deprecation warning. Any other key is an error naming the
// key, the file and the line.
//
// On top of spiffe-helper's keys the file may hold edgeid's own settings:
// SVID selection by spiffe_id, on_rotate = "restart", restart on exit with
// backoff, a combined PEM, PKCS#12 stores, Kafka client configs (a kafka
// block) and built-in mTLS tunnels (tunnel "name" blocks). The reference
// page, helper/README.md, lists every key with its default.
//
// How the file is read, in the manner of orchestrator/topology/parse.go:
// file.go declares each block as a struct, each key once by its hcl tag;
// prepass.go maps camelCase keys and octal modes to today's spelling;
// decode.go fills the structs, recording where each key was written; and
// the validator methods (validate.go, kafka.go, tunnel.go), one per block,
// apply defaults and report every problem at the key that causes it, in
// file order.
package config
