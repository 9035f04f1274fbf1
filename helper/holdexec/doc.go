// Package holdexec starts a child process held right after execve, and
// lets it run later.
//
// edgeid-helper uses it to launch a DeepStream app that must not start its
// pipeline before its first SVID is on disk, while the deepstream
// WorkloadAttestor must already be able to see it: between Start and
// Release the child exists with its final /proc/<pid>/exe, cmdline, root
// and cwd, but has not run a single instruction of the new program.
//
//	cmd := exec.Command("deepstream-test5-app", "-c", "test5.txt")
//	held, err := holdexec.Start(cmd)
//	if err != nil { ... }
//	svid, err := fetchSVID(ctx)  // the agent attests the held child
//	if err != nil { held.Kill(); cmd.Wait(); ... }
//	writeFiles(svid)
//	if err := held.Release(); err != nil { ... }
//	err = cmd.Wait()
//
// # How
//
// The child is started with ptrace(PTRACE_TRACEME) (SysProcAttr.Ptrace), so
// the kernel stops it with SIGTRAP when execve succeeds. Start waits for that
// stop and sets PTRACE_O_EXITKILL, so that if the launcher dies before
// releasing, the held child is killed instead of running without its
// certificates. Release detaches (PTRACE_DETACH, no signal); from then on the
// child is an ordinary child process. ptrace requests must come from the
// thread that traces, so each Held owns one goroutine locked to its OS
// thread until Release or Kill.
//
// # Requirements and limits
//
//   - Linux only. ptrace must be allowed: Yama ptrace_scope 0, 1 or 2
//     (3 forbids it), and a seccomp profile that permits ptrace (Docker's
//     default profile does on kernels >= 4.8).
//   - A set-user-ID or file-capability executable runs without its extra
//     privileges when started under ptrace.
//   - Exactly one of Release or Kill must be called for every Held; later
//     calls return ErrDone. The caller still owns cmd and must call cmd.Wait
//     to reap the child.
//   - SysProcAttr set by the caller is kept (Setpgid, Pdeathsig, ...). The
//     thread that forked the child stays alive after Release, so Pdeathsig
//     fires only when the launcher process dies.
//   - The child is not a tracee after Release: the launcher cannot debug it,
//     and nothing prevents a debugger from attaching later.
package holdexec
