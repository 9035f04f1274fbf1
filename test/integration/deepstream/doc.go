// Package deepstream holds the integration tests of the deepstream
// WorkloadAttestor against a real SPIRE v1.13.3 server and agent: the
// stand-in deepstream-test5-app gets its SVID as a direct Workload API
// caller, as a child held at exec by a minimal helper (testhelper) and by the
// real edgeid-helper (hold_until_svid, the app refusing to start without its
// certificate), and from inside a mount namespace + chroot; modified
// configs, other binaries and unrelated helpers get nothing.
package deepstream
