// Package atomicdir publishes a set of files that must change together, such
// as an X.509 certificate, its private key and the trust bundle.
//
// It follows the layout of Kubernetes' AtomicWriter. Every Write creates a
// new version directory (under "..versions" inside the target directory),
// writes and fsyncs each file with its mode set explicitly (so the umask and
// earlier files never decide the mode), fsyncs the version directory, then
// swaps one symlink, "..data", with a rename; Settle then fsyncs the target
// directory. The user-visible names are symlinks into "..data":
//
//	certs/
//	  ..data -> ..versions/..2026_11_23_16_40_00.123456789_ab12
//	  ..versions/..2026_11_23_16_40_00.123456789_ab12/svid.pem
//	  ..versions/..2026_11_23_16_40_00.123456789_ab12/svid_key.pem
//	  svid.pem     -> ..data/svid.pem
//	  svid_key.pem -> ..data/svid_key.pem
//
// The only change a rotation makes to certs/ itself is the "..data"
// rename, so a consumer that watches certs/ with inotify is woken after the
// swap, not while the next version is being written.
//
// A reader therefore never sees a torn file, and a reader that resolves
// "..data" once (see Snapshot) never sees files from two versions. A crash
// at any point leaves "..data" pointing at a complete earlier version;
// leftovers are removed by the next process's first Write. Settle, which
// callers run after acting on a Write (off the rotation's critical path),
// fsyncs the directory to make the swap durable and removes versions older
// than the previous one.
//
// Prepare, also run off the critical path, makes the next version's
// directory ahead of time, with each file at its last size (zero-filled) and
// mode, all synced. The next Write with the same names overwrites them in
// place: the directory updates and their fsyncs are already done, and a
// file that kept its size needs only fdatasync. That is most of the cost of
// a durable rotation.
//
// On tmpfs and ramfs, where nothing survives a power loss, the fsyncs are
// skipped: they would only delay the rotation.
package atomicdir
