// Package spirex509pop benchmarks kubeedge server attestation next to SPIRE
// v1.13.3's own x509pop code (github.com/spiffe/spire/pkg/common/plugin/x509pop),
// in the same run. It is a separate Go module so that SPIRE never enters the
// edgeid module's dependencies.
package spirex509pop
