package deepstream

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Pid races. A pid names a process only until it exits and the pid is
// reused. Each inspected process is therefore held by a pidfd from the
// first read on: the attestor reads its start time and parent first, reads
// everything else, and then checks that the pidfd's process is still alive
// and that start time and parent are unchanged. A process that fails the
// check yields nothing.
//
// Held at exec. A child that its launcher (the caller) holds right after
// execve has not run an instruction of its new image, so its argv, working
// directory and the config they name are exactly what the launcher passed.
// The proof uses kernel facts only; see heldAtExec.

// pidHandle keeps a process identified for the duration of an attestation.
type pidHandle interface {
	// alive fails once the process has exited (even if its pid is reused).
	alive() error
	Close() error
}

type pidfd int

func openPidfd(pid int) (pidHandle, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, os.ErrNotExist
		}
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	return pidfd(fd), nil
}

// alive reports whether the process the pidfd names still exists. The
// kernel looks the process up before it checks the permission to signal
// it, so EPERM (an agent without CAP_KILL asking about another uid's
// process, as edgeid runs it) means it exists; only ESRCH means it is gone.
func (p pidfd) alive() error {
	err := unix.PidfdSendSignal(int(p), 0, nil, 0)
	if err == nil || errors.Is(err, unix.EPERM) {
		return nil
	}
	return fmt.Errorf("process has exited: %w", err)
}

func (p pidfd) Close() error { return unix.Close(int(p)) }

// Bounds on the kernel-fact files read per process.
const (
	maxStatBytes    = 4 << 10
	maxStatusBytes  = 8 << 10
	maxSyscallBytes = 512
	maxAuxvBytes    = 4 << 10
)

var errNotChild = errors.New("no longer a child of its parent")

// track opens a pidfd on pid and takes the first snapshot of its kernel
// facts: start time and parent for every process, and for children also
// the status (state, tracer, context switches) and the system call it is
// stopped in, before anything the process controls is read.
func (a *attestation) track(pid int, parent *process) (*process, error) {
	a.visited++
	h, err := a.p.hooks.openPid(pid)
	if err != nil {
		return nil, err
	}
	proc := &process{pid: pid, parent: parent, handle: h, dir: filepath.Join(a.p.hooks.procDir, strconv.Itoa(pid))}
	a.tracked = append(a.tracked, proc)
	data, err := a.readProcFile(filepath.Join(proc.dir, "stat"), maxStatBytes)
	if err != nil {
		return nil, err
	}
	if proc.stat, err = parseStat(data); err != nil {
		return nil, err
	}
	if parent == nil {
		return proc, nil
	}
	if proc.stat.ppid != parent.pid {
		return nil, fmt.Errorf("%w: parent is %d, not %d", errNotChild, proc.stat.ppid, parent.pid)
	}
	if data, err = a.readProcFile(filepath.Join(proc.dir, "status"), maxStatusBytes); err != nil {
		return nil, err
	}
	if proc.status, err = parseStatus(data); err != nil {
		return nil, err
	}
	if proc.status.state == 't' {
		// Only a stopped process can be held; its system call is read now,
		// before its argv, and compared again after.
		proc.syscall, proc.syscallErr = a.readProcFile(filepath.Join(proc.dir, "syscall"), maxSyscallBytes)
	}
	return proc, nil
}

// closeAll releases the pidfds of every tracked process.
func (a *attestation) closeAll() {
	for _, p := range a.tracked {
		if p.handle != nil {
			_ = p.handle.Close()
		}
	}
}

// heldAtExec proves, from kernel facts, that proc is a child of caller
// stopped right after its execve by a ptrace stop of the caller, before the
// first instruction of the new image:
//
//   - its parent is the caller (stat/status PPid);
//   - it is in a ptrace stop (State t) and its tracer is a thread of the
//     caller (the tracer's Tgid);
//   - it is stopped in execve or execveat (/proc/<pid>/syscall) with its
//     program counter at the entry of the new image: AT_ENTRY for a static
//     binary (AT_BASE 0), else AT_BASE plus the entry of the interpreter
//     mapped at AT_BASE.
//
// It returns "" when proc is held, else the first fact that fails.
func (a *attestation) heldAtExec(proc, caller *process) string {
	switch {
	case proc == caller:
		return "the caller itself"
	case proc.parent != caller:
		return "not a direct child of the caller"
	case proc.stat.ppid != caller.pid || proc.status.ppid != caller.pid:
		return fmt.Sprintf("parent is %d, not the caller %d", proc.status.ppid, caller.pid)
	case proc.status.state != 't':
		return fmt.Sprintf("not in a ptrace stop (state %q)", proc.status.state)
	case proc.status.tracerPid == 0:
		return "not traced"
	}
	data, err := a.readProcFile(filepath.Join(a.p.hooks.procDir, strconv.Itoa(proc.status.tracerPid), "status"), maxStatusBytes)
	if err != nil {
		return fmt.Sprintf("tracer %d: %v", proc.status.tracerPid, err)
	}
	tracer, err := parseStatus(data)
	if err != nil {
		return fmt.Sprintf("tracer %d: %v", proc.status.tracerPid, err)
	}
	if tracer.tgid != caller.pid {
		return fmt.Sprintf("traced by thread %d of process %d, not by the caller %d", proc.status.tracerPid, tracer.tgid, caller.pid)
	}
	if proc.syscallErr != nil {
		return fmt.Sprintf("syscall: %v", proc.syscallErr)
	}
	sc, err := parseSyscall(proc.syscall)
	if err != nil {
		return err.Error()
	}
	if sc.running || (sc.nr != unix.SYS_EXECVE && sc.nr != unix.SYS_EXECVEAT) {
		return fmt.Sprintf("not stopped in execve (syscall %s)", strings.TrimSpace(string(proc.syscall)))
	}
	entry, err := a.imageEntry(proc)
	if err != nil {
		return fmt.Sprintf("entry of the new image: %v", err)
	}
	if sc.pc != entry {
		return fmt.Sprintf("program counter %#x is not the entry %#x of the new image", sc.pc, entry)
	}
	return ""
}

// imageEntry returns the address of the first instruction the kernel set
// up for proc's current image.
func (a *attestation) imageEntry(proc *process) (uint64, error) {
	data, err := a.readProcFile(filepath.Join(proc.dir, "auxv"), maxAuxvBytes)
	if err != nil {
		return 0, err
	}
	av, err := parseAuxv(data)
	if err != nil {
		return 0, err
	}
	if av.base == 0 {
		return av.entry, nil
	}
	interp, err := a.mappingAt(proc, av.base)
	if err != nil {
		return 0, err
	}
	hdr, err := a.readMappedHeader(proc, interp)
	if err != nil {
		return 0, fmt.Errorf("interpreter %s: %w", interp.path, err)
	}
	if hdr.typ == elf.ET_EXEC {
		return hdr.entry, nil
	}
	return av.base + hdr.entry, nil
}

// mappingAt finds the file mapping of proc that starts at addr with file
// offset 0.
func (a *attestation) mappingAt(proc *process, addr uint64) (mapping, error) {
	f, err := os.Open(filepath.Join(proc.dir, "maps"))
	if err != nil {
		return mapping{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(a.meter(f, maxMapsBytes))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	for sc.Scan() {
		m, err := parseMapsLine(sc.Text())
		if err != nil {
			return mapping{}, err
		}
		if m.start == addr {
			if m.offset != 0 || m.inode == 0 || !strings.HasPrefix(m.path, "/") {
				return mapping{}, fmt.Errorf("mapping at %#x is not the start of a file", addr)
			}
			if strings.HasSuffix(m.path, " (deleted)") {
				return mapping{}, fmt.Errorf("mapped file %s", m.path)
			}
			return m, nil
		}
	}
	if err := sc.Err(); err != nil {
		return mapping{}, err
	}
	return mapping{}, fmt.Errorf("nothing mapped at %#x", addr)
}

// readMappedHeader reads the ELF header of the file m maps, through the
// process's root, and checks that the file opened is the file mapped
// (device and inode).
func (a *attestation) readMappedHeader(proc *process, m mapping) (elfEntry, error) {
	view, ok := stripRoot(proc.rootDir, m.path)
	if !ok {
		return elfEntry{}, fmt.Errorf("%s is outside the process root", m.path)
	}
	root, err := openRootFS(filepath.Join(proc.dir, "root"))
	if err != nil {
		return elfEntry{}, err
	}
	defer root.Close()
	f, err := root.open(view)
	if err != nil {
		return elfEntry{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return elfEntry{}, err
	}
	if unix.Major(st.Dev) != m.major || unix.Minor(st.Dev) != m.minor || st.Ino != m.inode {
		return elfEntry{}, fmt.Errorf("%s is not the file mapped (device or inode differ)", view)
	}
	hdr := make([]byte, elfHeaderSize)
	if _, err := io.ReadFull(a.meter(f, elfHeaderSize), hdr); err != nil {
		return elfEntry{}, fmt.Errorf("read ELF header: %w", err)
	}
	return parseELFHeader(hdr)
}

// recheck confirms, after everything was read, that proc and its ancestors
// up to the caller are the processes first seen: alive (pidfd), same start
// time and parent, and for a held child still held without having run
// (same ptrace stop, same system call, no context switch since).
func (a *attestation) recheck(proc *process) error {
	for p := proc; p != nil; p = p.parent {
		if err := p.handle.alive(); err != nil {
			return fmt.Errorf("pid %d: %w", p.pid, err)
		}
		data, err := a.readProcFile(filepath.Join(p.dir, "stat"), maxStatBytes)
		if err != nil {
			return fmt.Errorf("pid %d: %w", p.pid, err)
		}
		st, err := parseStat(data)
		if err != nil {
			return fmt.Errorf("pid %d: %w", p.pid, err)
		}
		if st.startTime != p.stat.startTime {
			return fmt.Errorf("pid %d now belongs to another process (start time %d, was %d)", p.pid, st.startTime, p.stat.startTime)
		}
		if st.ppid != p.stat.ppid {
			return fmt.Errorf("pid %d changed parent (%d, was %d)", p.pid, st.ppid, p.stat.ppid)
		}
		if !p.held {
			continue
		}
		if data, err = a.readProcFile(filepath.Join(p.dir, "status"), maxStatusBytes); err != nil {
			return fmt.Errorf("pid %d: %w", p.pid, err)
		}
		status, err := parseStatus(data)
		if err != nil {
			return fmt.Errorf("pid %d: %w", p.pid, err)
		}
		if status != p.status {
			return fmt.Errorf("pid %d ran or was released while it was read (status changed)", p.pid)
		}
		sc, err := a.readProcFile(filepath.Join(p.dir, "syscall"), maxSyscallBytes)
		if err != nil || !bytes.Equal(sc, p.syscall) {
			return fmt.Errorf("pid %d ran or was released while it was read (system call changed)", p.pid)
		}
	}
	return nil
}
