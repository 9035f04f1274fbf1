// Package deepstreambench measures the deepstream WorkloadAttestor's Attest
// latency over gRPC against real processes on this machine: cold (empty
// hash cache, so the executable is hashed) and cached, for the app calling
// itself and for a helper whose child is the app. Run with `make bench`;
// the p50/p90/p99 figures are printed per benchmark. Target: cached p50
// ≤ 1 ms.
package deepstreambench
