package deepstream

import (
	"debug/elf"
	"testing"
)

// Fuzz targets for the parsers of /proc files whose bytes a process
// influences (its comm, the names of the files it maps, its cgroup names)
// and of ELF headers read from a process's root. None may panic, and what
// they accept must be consistent.

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine(42, "deepstream-app", 't', 7, 1000)))
	f.Add([]byte(statLine(42, "a) t 1 2 (b", 'S', 7, 1000)))
	f.Add([]byte("1 (x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseStat(data)
		if err == nil && st.ppid < 0 {
			t.Fatalf("negative ppid accepted: %+v", st)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(statusText(42, "deepstream-app", 't', 7, 7, 1, 2)))
	f.Add([]byte("State:\tt\nTgid:\t1\nTgid:\t2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseStatus(data)
		if err == nil && (st.tgid <= 0 || st.ppid < 0 || st.tracerPid < 0) {
			t.Fatalf("bad pids accepted: %+v", st)
		}
	})
}

func FuzzParseSyscall(f *testing.F) {
	f.Add([]byte(execveStop(fakeEntry)))
	f.Add([]byte("-1 0x7ffd 0x401000\n"))
	f.Add([]byte("running\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := parseSyscall(data)
		if err == nil && sc.running && sc.pc != 0 {
			t.Fatalf("running with a pc: %+v", sc)
		}
	})
}

func FuzzParseAuxv(f *testing.F) {
	f.Add(auxvBytes(atEntry, fakeEntry, atBase, 0))
	f.Add(auxvBytes(atBase, 0x7f0000000000, atEntry, 0x5555, 6, 4096))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseAuxv(data)
	})
}

func FuzzParseELFHeader(f *testing.F) {
	f.Add(elfHeader(elf.ET_DYN, nativeMachine, fakeInterpEntry))
	f.Add(elfHeader(elf.ET_EXEC, nativeMachine, fakeEntry))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseELFHeader(data)
		if err == nil && h.typ != elf.ET_DYN && h.typ != elf.ET_EXEC {
			t.Fatalf("type %v accepted", h.typ)
		}
	})
}

func FuzzParseMapsLine(f *testing.F) {
	f.Add("7ff4990c7000-7ff4990c8000 r--p 00000000 fe:00 325835                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	f.Add("7fff88640000-7fff88661000 rw-p 00000000 00:00 0                          [stack]")
	f.Add("55b75d07a000-55b75d07c000 r--p 00000000 fe:00 247766 /tmp/a b (deleted)")
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseMapsLine(line)
		if err == nil && m.end < m.start {
			t.Fatalf("end before start accepted: %+v", m)
		}
	})
}

func FuzzContainerID(f *testing.F) {
	id := testContainerID
	f.Add([]byte("0::/system.slice/docker-" + id + ".scope\n"))
	f.Add([]byte("12:memory:/docker/" + id + "\n11:cpu,cpuacct:/docker/" + id + "\n"))
	f.Add([]byte("1:name=systemd:/kubepods/burstable/pod0d1f/" + id + "\n0::/\n"))
	f.Add([]byte("0::/a/docker-" + id + ".scope/libpod-" + id + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseCgroupFile(data)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, e := range entries {
			if seen[e.hierarchy] {
				t.Fatalf("hierarchy %d accepted twice", e.hierarchy)
			}
			seen[e.hierarchy] = true
			got, depth, err := containerIDInPath(e.path)
			if err != nil || got == "" {
				continue
			}
			if len(got) != 64 || depth < 1 {
				t.Fatalf("id %q at depth %d from %q", got, depth, e.path)
			}
		}
	})
}
