// Package deepstream holds the integration tests of the deepstream
// WorkloadAttestor against a real SPIRE v1.13.3 server and agent: the
// stand-in deepstream-test5-app gets the held pipeline's SVID (an entry with
// deepstream:launch:held) as a child held at exec by a minimal helper
// (testhelper) and by the real edgeid-helper (hold_until_svid, the app
// refusing to start without its certificate); as a direct Workload API
// caller, unheld child or from inside a mount namespace + chroot it gets
// only entries written on its self-reported config selectors; modified
// configs, other binaries and unrelated helpers get nothing.
package deepstream
