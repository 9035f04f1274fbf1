// Package runner runs a topology's plan as local processes on loopback: the
// embedded default of `edgeid up`. It starts Vault and its bootstrap, the
// cloud SPIRE servers, each site's cloud agent, edge server and edge agents,
// the workloads under edgeid-helper and the demo Kafka broker, in that
// order, waiting on health rather than sleeping. It is resumable: every
// step checks what is already running or registered, so re-running `up`
// after a crash converges without duplicates. `down` stops what `up`
// started, by PID.
package runner
