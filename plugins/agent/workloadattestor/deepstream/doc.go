// Package deepstream implements the `deepstream` SPIRE agent
// WorkloadAttestor: it gives identities only to verified NVIDIA DeepStream
// pipelines.
//
// # What it attests
//
// Given the pid of a Workload API caller, the plugin decides whether the
// process is a DeepStream app: its executable's basename matches app_names
// (default "deepstream-*"), or it is an interpreter running a script whose
// name matches script_names (default "deepstream*"), or it maps a
// "libnvds_" library. It then reads the config given with -c / --cfg-file,
// the adaptor configs that config references, and the DeepStream install's
// version file, all through /proc/<pid>/root and /proc/<pid>/cwd so that
// paths mean what they mean to the process, containers included. Selectors
// are prefixed "deepstream:": launch:held, app, exe_sha256, script_sha256,
// config_path, config_sha256, proto, broker, publish_topic,
// subscribe_topic, model_sha256 (opt-in), version and container_id, and
// self_reported:<name> for the claims of an app that is not held.
//
// # Trust model: kernel facts and claims
//
// A C DeepStream app never calls the Workload API; a helper (edgeid-helper)
// does, on its behalf, and launches the app as its child. When the caller
// itself is not a DeepStream app, the plugin therefore looks at the
// caller's descendants down to child_depth generations (default 1: direct
// children only) and attests the nearest DeepStream app it finds. If
// several different DeepStream apps are found, no selectors are returned,
// so that parts of two pipelines cannot be combined into an identity
// neither has.
//
// A process can rewrite its argv and choose its working directory, so the
// selectors derived from them (an interpreter app's name, script_sha256,
// config_path, config_sha256, proto, broker, the topics, model_sha256) are
// claims. They keep their names only for a child of the caller that is
// provably held at exec (see heldAtExec: PPid, ptrace stop by a thread of
// the caller, execve with the program counter at the new image's entry,
// and nothing scheduled between the reads), which also gets launch:held.
// Otherwise they are reported as self_reported:<name>:<value>. Kernel
// facts (app of a binary, exe_sha256, version, container_id) keep their
// names always. container_id comes only from runtime-specific components
// of root-owned cgroups (cgroup.go).
//
// launch:held proves what the launcher passed, not that the launcher is
// honest; entries pin the launcher with SPIRE's unix attestor.
//
// # Starting the app before its certificates exist
//
// DeepStream reads its Kafka certificates when the pipeline starts, so the
// app must not run before its first SVID is written. The helper starts the
// app held right after exec (package helper/holdexec: ptrace stop), at which
// point /proc/<pid>/exe and cmdline already show the app and its config;
// the helper fetches the SVID (this plugin attests the held child), writes
// the files and then releases the app. Library detection does not work on a
// held app (nothing but the executable and the loader is mapped yet), so
// held apps are recognised by name.
//
// # Pid races and budgets
//
// Every inspected process is held by a pidfd and its start time and parent
// are rechecked after everything was read (track.go). Each attestation has
// a byte budget (max_attestation_bytes) and a time budget
// (attestation_timeout); a spent budget fails the attestation with
// ResourceExhausted (budget.go).
//
// # Failure behaviour
//
// Every file read has a size limit. A config that is missing, too large,
// malformed, or that references a path escaping the process root yields no
// config selectors and a warning in the agent log; the attestation still
// succeeds with the other selectors (app, exe_sha256, version,
// container_id), which remain true. An entry that requires a config
// selector then simply does not match.
package deepstream
