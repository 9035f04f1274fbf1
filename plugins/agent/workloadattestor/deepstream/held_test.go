package deepstream

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
)

// elfHeader builds an ELF header of the build architecture.
func elfHeader(typ elf.Type, machine elf.Machine, entry uint64) []byte {
	hdr := make([]byte, elfHeaderSize)
	copy(hdr, elf.ELFMAG)
	hdr[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 {
		hdr[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	}
	hdr[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	bo := binary.NativeEndian
	bo.PutUint16(hdr[16:], uint16(typ))
	bo.PutUint16(hdr[18:], uint16(machine))
	bo.PutUint32(hdr[20:], 1)
	bo.PutUint64(hdr[24:], entry)
	return hdr
}

const (
	fakeInterpBase  = 0x7f1200000000
	fakeInterpEntry = 0x1ab70
)

// dynamicHeld is test5 held at exec as a dynamically linked program: the
// program counter is the entry of the interpreter mapped at AT_BASE.
func (f *fakeProc) dynamicHeld(ldso string) fakeProcess {
	f.write(ldso, string(elfHeader(elf.ET_DYN, nativeMachine, fakeInterpEntry))+strings.Repeat("\x00", 4096))
	var st unix.Stat_t
	if err := unix.Stat(f.host(ldso), &st); err != nil {
		f.t.Fatal(err)
	}
	p := test5Process
	p.held = true
	p.auxv = auxvBytes(atEntry, 0x55550000a000, atBase, fakeInterpBase)
	p.syscall = execveStop(fakeInterpBase + fakeInterpEntry)
	p.maps = fmt.Sprintf("55550000a000-55550000b000 r--p 00000000 fe:00 1234 %s\n"+
		"%x-%x r--p 00000000 %02x:%02x %d %s\n"+
		"%x-%x r-xp 00001000 %02x:%02x %d %s\n",
		f.host(test5Process.exe),
		uint64(fakeInterpBase), uint64(fakeInterpBase+0x1000), unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino, f.host(ldso),
		uint64(fakeInterpBase+0x1000), uint64(fakeInterpBase+0x27000), unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino, f.host(ldso))
	return p
}

// TestHeldAtExec checks each fact of the held-at-exec proof on fixtures:
// a child is trusted (launch:held, argv-derived selectors under their
// names) only when all of them hold, and self-reported otherwise, with the
// failed fact in the debug log.
func TestHeldAtExec(t *testing.T) {
	helper := fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper", "run"}, children: []int{200}}
	for _, tt := range []struct {
		name    string
		child   func(f *fakeProc) fakeProcess
		setup   func(f *fakeProc)
		held    bool
		wantLog string
	}{
		{name: "static binary stopped at AT_ENTRY", held: true, child: func(f *fakeProc) fakeProcess {
			p := test5Process
			p.held = true
			return p
		}},
		{name: "dynamic binary stopped at the interpreter's entry", held: true, child: func(f *fakeProc) fakeProcess {
			return f.dynamicHeld("/lib64/ld-linux-x86-64.so.2")
		}},
		{name: "stopped in execveat", held: true, child: func(f *fakeProc) fakeProcess {
			p := test5Process
			p.held = true
			p.syscall = strings.Replace(execveStop(fakeEntry), fmt.Sprint(unix.SYS_EXECVE), fmt.Sprint(unix.SYS_EXECVEAT), 1)
			return p
		}},
		{name: "traced by another thread of the caller", held: true, child: func(f *fakeProc) fakeProcess {
			p := test5Process
			p.held, p.tracer = true, 101
			return p
		}, setup: func(f *fakeProc) {
			if err := os.MkdirAll(f.procDir(101), 0o755); err != nil {
				t.Fatal(err)
			}
			f.writeProc(101, "status", statusText(100, "edgeid-helper", 'S', 1, 0, 5, 5))
		}},
		{name: "released: running", wantLog: "not in a ptrace stop", child: func(f *fakeProc) fakeProcess { return test5Process }},
		{name: "stopped but not traced", wantLog: "not traced", child: func(f *fakeProc) fakeProcess {
			p := test5Process
			p.state = 't'
			return p
		}},
		{name: "traced by another process", wantLog: "traced by thread 999 of process 999, not by the caller 100", child: func(f *fakeProc) fakeProcess {
			p := test5Process
			p.held, p.tracer = true, 999
			return p
		}, setup: func(f *fakeProc) { f.add(999, fakeProcess{exe: "/usr/bin/sleep", args: []string{"gdb"}}) }},
		{name: "stopped in another system call", wantLog: "not stopped in execve", child: func(f *fakeProc) fakeProcess {
			p := test5Process
			p.held = true
			p.syscall = fmt.Sprintf("%d 0x0 0x7ffd00 0x0 0x0 0x0 0x0 0x7ffdf0 %#x\n", unix.SYS_NANOSLEEP, fakeEntry+0x40)
			return p
		}},
		{name: "stopped outside a system call", wantLog: "not stopped in execve", child: func(f *fakeProc) fakeProcess {
			p := test5Process
			p.held = true
			p.syscall = fmt.Sprintf("-1 0x7ffdf0 %#x\n", fakeEntry)
			return p
		}},
		{name: "in execve but the image has run", wantLog: "is not the entry 0x401000", child: func(f *fakeProc) fakeProcess {
			// A process that ran and is stopped entering a second execve
			// (its program counter is in its old code).
			p := test5Process
			p.held = true
			p.syscall = execveStop(fakeEntry + 0x1234)
			return p
		}},
		{name: "interpreter entry does not match", wantLog: "is not the entry", child: func(f *fakeProc) fakeProcess {
			p := f.dynamicHeld("/lib64/ld-linux-x86-64.so.2")
			p.syscall = execveStop(fakeInterpBase + 0x999)
			return p
		}},
		{name: "interpreter file is not the one mapped", wantLog: "not the file mapped", child: func(f *fakeProc) fakeProcess {
			p := f.dynamicHeld("/lib64/ld-linux-x86-64.so.2")
			// The path now holds another file (same header, other inode).
			hdr, err := os.ReadFile(f.host("/lib64/ld-linux-x86-64.so.2"))
			if err != nil {
				t.Fatal(err)
			}
			f.write("/lib64/ld.new", string(hdr))
			if err := os.Rename(f.host("/lib64/ld.new"), f.host("/lib64/ld-linux-x86-64.so.2")); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{name: "nothing mapped at AT_BASE", wantLog: "nothing mapped at", child: func(f *fakeProc) fakeProcess {
			p := f.dynamicHeld("/lib64/ld-linux-x86-64.so.2")
			p.maps = ""
			return p
		}},
		{name: "auxv without AT_ENTRY", wantLog: "no AT_ENTRY", child: func(f *fakeProc) fakeProcess {
			p := test5Process
			p.held = true
			p.auxv = auxvBytes(atBase, 0)
			return p
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeProc(t)
			f.add(100, helper)
			if tt.setup != nil {
				tt.setup(f)
			}
			f.add(200, tt.child(f))
			tp := loadPlugin(t, f, "")
			assertSelectors(t, tp.attest(t, 100), f.wantTest5(tt.held))
			if tt.wantLog != "" && !strings.Contains(tp.logs.String(), tt.wantLog) {
				t.Fatalf("debug log does not give the reason %q:\n%s", tt.wantLog, tp.logs)
			}
		})
	}

	t.Run("a child whose parent is not the caller is not attested", func(t *testing.T) {
		// Listed among the caller's children, but its stat names another
		// parent: the pid was reused between the listing and the read.
		f := newFakeProc(t)
		f.add(100, helper)
		p := test5Process
		p.held, p.ppid, p.tracer = true, 77, 100
		f.add(200, p)
		tp := loadPlugin(t, f, "")
		assertSelectors(t, tp.attest(t, 100), nil)
		if !strings.Contains(tp.logs.String(), "parent is 77, not 100") {
			t.Fatalf("no reason logged:\n%s", tp.logs)
		}
	})
	t.Run("the caller itself is never held", func(t *testing.T) {
		f := newFakeProc(t)
		p := test5Process
		p.held, p.ppid, p.tracer = true, 1, 1
		f.add(200, p)
		assertSelectors(t, loadPlugin(t, f, "").attest(t, 200), f.wantTest5(false))
	})
}

// TestPidRace swaps processes between the reads and the recheck (the
// beforeRecheck seam): a process that exited, whose pid now names another
// process, or a held child that ran in between yields nothing. With the
// recheck off, the same swaps pass unnoticed, which shows what it guards.
func TestPidRace(t *testing.T) {
	helper := fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper", "run"}, children: []int{200}}
	held := test5Process
	held.held = true
	for _, tt := range []struct {
		name    string
		swap    func(f *fakeProc)
		wantLog string
	}{
		{name: "held child exited and its pid was reused", wantLog: "now belongs to another process", swap: func(f *fakeProc) {
			f.writeProc(200, "stat", statLine(200, "impostor", 'S', 100, 1001))
		}},
		{name: "held child exited", wantLog: "process has exited", swap: func(f *fakeProc) {
			if err := os.RemoveAll(f.procDir(200)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "held child was reparented", wantLog: "changed parent", swap: func(f *fakeProc) {
			f.writeProc(200, "stat", statLine(200, "deepstream-test5-app", 't', 1, 1000))
		}},
		{name: "held child ran and stopped again", wantLog: "ran or was released while it was read", swap: func(f *fakeProc) {
			f.writeProc(200, "status", statusText(200, "deepstream-test5-app", 't', 100, 100, 4, 2))
		}},
		{name: "held child was released", wantLog: "ran or was released while it was read", swap: func(f *fakeProc) {
			f.writeProc(200, "status", statusText(200, "deepstream-test5-app", 'S', 100, 0, 3, 2))
			f.writeProc(200, "syscall", "running")
		}},
		{name: "caller's pid was reused", wantLog: "Caller changed while it was attested", swap: func(f *fakeProc) {
			f.writeProc(100, "stat", statLine(100, "edgeid-helper", 'S', 1, 999))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, recheck := range []bool{true, false} {
				f := newFakeProc(t)
				f.add(100, helper)
				f.add(200, held)
				tp := loadPlugin(t, f, "")
				tp.plugin.hooks.beforeRecheck = func() { tt.swap(f) }
				tp.plugin.hooks.skipRecheck = !recheck
				got := tp.attest(t, 100)
				if !recheck {
					// What the recheck prevents: the first process's
					// selectors for whatever holds the pid now.
					assertSelectors(t, got, f.wantTest5(true))
					continue
				}
				assertSelectors(t, got, nil)
				if !strings.Contains(tp.logs.String(), tt.wantLog) {
					t.Fatalf("log does not say %q:\n%s", tt.wantLog, tp.logs)
				}
			}
		})
	}

	t.Run("one of two identical children swapped", func(t *testing.T) {
		f := newFakeProc(t)
		f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{200, 201}})
		f.add(200, held)
		f.add(201, held)
		tp := loadPlugin(t, f, "")
		tp.plugin.hooks.beforeRecheck = func() { f.writeProc(201, "stat", statLine(201, "x", 'S', 100, 5)) }
		assertSelectors(t, tp.attest(t, 100), f.wantTest5(true))
	})
}

// TestBudgets checks that an attestation stops with ResourceExhausted, and
// one log line, when it reads more than max_attestation_bytes or takes
// longer than attestation_timeout, and never returns part of its
// selectors.
func TestBudgets(t *testing.T) {
	t.Run("children with huge maps", func(t *testing.T) {
		f := newFakeProc(t)
		var kids []int
		for i := range 40 {
			kids = append(kids, 300+i)
		}
		f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: append(slices.Clone(kids), 200)})
		line := "7f0000000000-7f0000001000 r--p 00000000 fe:00 42 /data/" + strings.Repeat("x", 200) + "\n"
		for _, k := range kids {
			f.add(k, fakeProcess{exe: "/usr/bin/sleep", args: []string{"worker"}, maps: strings.Repeat(line, (256<<10)/len(line))})
		}
		held := test5Process
		held.held = true
		f.add(200, held)
		// Within the default budget the pipeline is attested...
		tp := loadPlugin(t, f, "")
		assertSelectors(t, tp.attest(t, 100), f.wantTest5(true))
		// ...with 1 MiB, the 40 maps of 256 KiB exhaust it.
		tp = loadPlugin(t, f, "max_attestation_bytes = 1048576")
		_, err := tp.wa.Attest(t.Context(), &workloadattestorv1.AttestRequest{Pid: 100})
		assertCode(t, err, codes.ResourceExhausted, "read more than max_attestation_bytes (1048576 bytes)")
		if n := strings.Count(tp.logs.String(), "[WARN]"); n != 1 || !strings.Contains(tp.logs.String(), "Attestation exceeded its byte budget") {
			t.Fatalf("want exactly one warning, about the byte budget; got %d:\n%s", n, tp.logs)
		}
	})
	t.Run("config files count", func(t *testing.T) {
		f := newFakeProc(t)
		f.write("/configs/big.txt", "[application]\n"+strings.Repeat("# padding "+strings.Repeat("x", 100)+"\n", 1500))
		p := test5Process
		p.args = []string{"deepstream-test5-app", "-c", "/configs/big.txt"}
		f.add(200, p)
		tp := loadPlugin(t, f, "max_attestation_bytes = 131072")
		_, err := tp.wa.Attest(t.Context(), &workloadattestorv1.AttestRequest{Pid: 200})
		assertCode(t, err, codes.ResourceExhausted, "max_attestation_bytes")
		if strings.Contains(tp.logs.String(), "Ignoring DeepStream config") {
			t.Fatalf("a spent budget was reported as a bad config:\n%s", tp.logs)
		}
		// The same config within budget is only too large for nothing.
		tp = loadPlugin(t, f, "max_attestation_bytes = 1048576")
		if got := tp.attest(t, 200); !slices.Contains(got, "self_reported:config_path:/configs/big.txt") {
			t.Fatalf("selectors %q", got)
		}
	})
	t.Run("hashing counts against time", func(t *testing.T) {
		f := newFakeProc(t)
		// A 2 GiB sparse executable takes seconds to hash.
		exe := f.host("/opt/big/deepstream-app")
		f.mkdir("/opt/big")
		fh, err := os.Create(exe)
		if err != nil {
			t.Fatal(err)
		}
		if err := fh.Truncate(2 << 30); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		f.add(200, fakeProcess{exe: "/opt/big/deepstream-app", args: []string{"deepstream-app"}})
		tp := loadPlugin(t, f, `attestation_timeout = "100ms"
max_exe_bytes = 4294967296`)
		_, err = tp.wa.Attest(t.Context(), &workloadattestorv1.AttestRequest{Pid: 200})
		assertCode(t, err, codes.ResourceExhausted, "took longer than attestation_timeout (100ms)")
		if n := strings.Count(tp.logs.String(), "[WARN]"); n != 1 || !strings.Contains(tp.logs.String(), "Attestation exceeded its time budget") {
			t.Fatalf("want exactly one warning, about the time budget; got %d:\n%s", n, tp.logs)
		}
		if tp.plugin.hashes.len() != 0 {
			t.Fatal("a hash cut short was cached")
		}
	})
}

func TestCgroupMountRealRoot(t *testing.T) {
	// The real cgroup root of this host is recognised: every hierarchy of
	// this test process maps to a mount (v2-only or hybrid).
	a := &attestation{p: New()}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseCgroupFile(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		dir, err := a.cgroupMount(e)
		if err != nil {
			t.Errorf("line %+v: %v", e, err)
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.path)); err != nil {
			t.Errorf("line %+v: mount %s: %v", e, dir, err)
		}
	}
}
