package deepstream

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// Parsers of the /proc files that carry kernel facts about a process. Their
// input is untrusted: a process chooses its own comm (stat, status) and the
// names of the files it maps (maps), so every parser is strict and bounded,
// and each has a fuzz target.

// procStat is what /proc/<pid>/stat says about a process.
type procStat struct {
	state byte
	ppid  int
	// startTime is field 22: clock ticks after boot at which the process
	// started. It survives execve and differs between two processes that
	// had the same pid unless both started within one tick.
	startTime uint64
}

// parseStat parses /proc/<pid>/stat. The comm field (2) is in parentheses
// and may itself contain ") " and spaces, so the fields are counted after
// the last ')'.
func parseStat(data []byte) (procStat, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, errors.New("stat: no comm field")
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); field n is fields[n-3].
	if len(fields) < 22-2 {
		return procStat{}, fmt.Errorf("stat: %d fields after comm, want at least %d", len(fields), 22-2)
	}
	if len(fields[0]) != 1 {
		return procStat{}, fmt.Errorf("stat: bad state %q", fields[0])
	}
	ppid, err := strconv.Atoi(fields[4-3])
	if err != nil || ppid < 0 {
		return procStat{}, fmt.Errorf("stat: bad ppid %q", fields[4-3])
	}
	start, err := strconv.ParseUint(fields[22-3], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat: bad start time %q", fields[22-3])
	}
	return procStat{state: fields[0][0], ppid: ppid, startTime: start}, nil
}

// procStatus holds the lines of /proc/<pid>/status the attestor uses.
type procStatus struct {
	state     byte // first letter of State:, 't' for a ptrace stop
	tgid      int
	ppid      int
	tracerPid int
	// voluntary and nonvoluntary context switches of the thread: a task
	// that stays stopped is never scheduled, so both stay the same.
	voluntary    uint64
	nonvoluntary uint64
}

// parseStatus parses /proc/<pid>/status. Every key it needs must appear
// exactly once. The kernel escapes newlines in the Name line, so a process
// cannot add lines of its own.
func parseStatus(data []byte) (procStatus, error) {
	var st procStatus
	seen := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		var err error
		switch key {
		case "State":
			if value == "" {
				err = errors.New("empty")
			} else {
				st.state = value[0]
			}
		case "Tgid":
			st.tgid, err = strconv.Atoi(value)
		case "PPid":
			st.ppid, err = strconv.Atoi(value)
		case "TracerPid":
			st.tracerPid, err = strconv.Atoi(value)
		case "voluntary_ctxt_switches":
			st.voluntary, err = strconv.ParseUint(value, 10, 64)
		case "nonvoluntary_ctxt_switches":
			st.nonvoluntary, err = strconv.ParseUint(value, 10, 64)
		default:
			continue
		}
		if err != nil {
			return procStatus{}, fmt.Errorf("status: bad %s %q", key, value)
		}
		if seen[key] {
			return procStatus{}, fmt.Errorf("status: duplicate %s", key)
		}
		seen[key] = true
	}
	for _, key := range []string{"State", "Tgid", "PPid", "TracerPid", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"} {
		if !seen[key] {
			return procStatus{}, fmt.Errorf("status: no %s", key)
		}
	}
	if st.tgid <= 0 || st.ppid < 0 || st.tracerPid < 0 {
		return procStatus{}, errors.New("status: negative or zero pid")
	}
	return st, nil
}

// procSyscall is /proc/<pid>/syscall: the system call a blocked task is in
// (nr >= 0), or -1 when it is blocked outside one, and its program counter.
type procSyscall struct {
	running bool
	nr      int64
	pc      uint64
}

// parseSyscall parses /proc/<pid>/syscall: "running", "-1 SP PC" or
// "NR ARG1 ... ARG6 SP PC" with hexadecimal arguments.
func parseSyscall(data []byte) (procSyscall, error) {
	text := strings.TrimSuffix(string(data), "\n")
	if text == "running" {
		return procSyscall{running: true}, nil
	}
	fields := strings.Split(text, " ")
	nr, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil || nr < -1 {
		return procSyscall{}, fmt.Errorf("syscall: bad number %q", fields[0])
	}
	want := 9
	if nr == -1 {
		want = 3
	}
	if len(fields) != want {
		return procSyscall{}, fmt.Errorf("syscall: %d fields, want %d", len(fields), want)
	}
	var pc uint64
	for i, f := range fields[1:] {
		hex, ok := strings.CutPrefix(f, "0x")
		if !ok {
			return procSyscall{}, fmt.Errorf("syscall: field %d %q is not hexadecimal", i+2, f)
		}
		v, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			return procSyscall{}, fmt.Errorf("syscall: field %d %q is not hexadecimal", i+2, f)
		}
		pc = v
	}
	return procSyscall{nr: nr, pc: pc}, nil
}

// Auxiliary vector keys (<linux/auxvec.h>).
const (
	atNull  = 0
	atBase  = 7
	atEntry = 9
)

// auxv holds the entries of /proc/<pid>/auxv the attestor uses: the
// program's entry point and the load address of its interpreter (0 for a
// static binary). The kernel writes the vector at execve; the process
// cannot change the copy /proc shows without CAP_SYS_RESOURCE.
type auxv struct {
	base, entry uint64
}

// wordSize is the size of an auxv word for the build architecture. A
// process of another word size (a 32-bit process on a 64-bit kernel) fails
// to parse, which only costs it the held proof.
const wordSize = strconv.IntSize / 8

// parseAuxv parses /proc/<pid>/auxv as native-endian (key, value) word
// pairs ending with AT_NULL. AT_ENTRY must be present, and no key the
// attestor uses may repeat.
func parseAuxv(data []byte) (auxv, error) {
	if len(data)%(2*wordSize) != 0 {
		return auxv{}, fmt.Errorf("auxv: %d bytes is not a whole number of pairs", len(data))
	}
	word := func(b []byte) uint64 {
		if wordSize == 8 {
			return binary.NativeEndian.Uint64(b)
		}
		return uint64(binary.NativeEndian.Uint32(b))
	}
	var out auxv
	var haveBase, haveEntry, end bool
	for i := 0; i+2*wordSize <= len(data); i += 2 * wordSize {
		key, value := word(data[i:]), word(data[i+wordSize:])
		switch key {
		case atNull:
			end = true
		case atBase:
			if haveBase {
				return auxv{}, errors.New("auxv: duplicate AT_BASE")
			}
			out.base, haveBase = value, true
		case atEntry:
			if haveEntry {
				return auxv{}, errors.New("auxv: duplicate AT_ENTRY")
			}
			out.entry, haveEntry = value, true
		}
		if end {
			break
		}
	}
	if !end {
		return auxv{}, errors.New("auxv: no AT_NULL terminator")
	}
	if !haveEntry {
		return auxv{}, errors.New("auxv: no AT_ENTRY")
	}
	return out, nil
}

// elfHeaderSize is the size of an ELF header of the build's word size.
const elfHeaderSize = 16 + 2 + 2 + 4 + 3*wordSize + 4 + 6*2

// nativeMachine is the ELF machine of the build architecture (0 if this
// file does not know it, in which case no held proof succeeds).
var nativeMachine = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"riscv64": elf.EM_RISCV,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"loong64": elf.EM_LOONGARCH,
	"386":     elf.EM_386,
	"arm":     elf.EM_ARM,
}[runtime.GOARCH]

// elfEntry is what the attestor takes from an ELF header.
type elfEntry struct {
	typ   elf.Type
	entry uint64
}

// parseELFHeader checks that hdr is the header of an executable or shared
// object for the build architecture and returns its type and e_entry.
func parseELFHeader(hdr []byte) (elfEntry, error) {
	if len(hdr) < elfHeaderSize {
		return elfEntry{}, fmt.Errorf("elf: header is %d bytes, want %d", len(hdr), elfHeaderSize)
	}
	if string(hdr[:4]) != elf.ELFMAG {
		return elfEntry{}, errors.New("elf: bad magic")
	}
	wantClass := elf.ELFCLASS64
	if wordSize == 4 {
		wantClass = elf.ELFCLASS32
	}
	if elf.Class(hdr[elf.EI_CLASS]) != wantClass {
		return elfEntry{}, fmt.Errorf("elf: class %v, want %v", elf.Class(hdr[elf.EI_CLASS]), wantClass)
	}
	wantData := elf.ELFDATA2LSB
	if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 {
		wantData = elf.ELFDATA2MSB
	}
	if elf.Data(hdr[elf.EI_DATA]) != wantData {
		return elfEntry{}, fmt.Errorf("elf: byte order %v, want %v", elf.Data(hdr[elf.EI_DATA]), wantData)
	}
	if elf.Version(hdr[elf.EI_VERSION]) != elf.EV_CURRENT {
		return elfEntry{}, errors.New("elf: bad version")
	}
	bo := binary.NativeEndian
	typ := elf.Type(bo.Uint16(hdr[16:]))
	if typ != elf.ET_EXEC && typ != elf.ET_DYN {
		return elfEntry{}, fmt.Errorf("elf: type %v is not an executable or shared object", typ)
	}
	if m := elf.Machine(bo.Uint16(hdr[18:])); nativeMachine == 0 || m != nativeMachine {
		return elfEntry{}, fmt.Errorf("elf: machine %v, want %v", m, nativeMachine)
	}
	var entry uint64
	if wordSize == 8 {
		entry = bo.Uint64(hdr[24:])
	} else {
		entry = uint64(bo.Uint32(hdr[24:]))
	}
	return elfEntry{typ: typ, entry: entry}, nil
}

// mapping is one line of /proc/<pid>/maps.
type mapping struct {
	start, end uint64
	offset     uint64
	major      uint32
	minor      uint32
	inode      uint64
	path       string // agent's view; "" for anonymous mappings
}

// parseMapsLine parses "START-END PERMS OFFSET MAJ:MIN INODE [PATH]". The
// kernel escapes newlines in PATH; spaces remain, so PATH is the rest of
// the line after the padding.
func parseMapsLine(line string) (mapping, error) {
	var fields [5]string
	rest := line
	for i := range fields {
		rest = strings.TrimLeft(rest, " ")
		var ok bool
		fields[i], rest, ok = strings.Cut(rest, " ")
		if !ok && i < len(fields)-1 {
			return mapping{}, fmt.Errorf("maps: %d fields, want at least 5", i+1)
		}
	}
	var m mapping
	var err error
	startS, endS, ok := strings.Cut(fields[0], "-")
	if !ok {
		return mapping{}, fmt.Errorf("maps: bad range %q", fields[0])
	}
	hex := func(s string, bits int) (uint64, error) { return strconv.ParseUint(s, 16, bits) }
	if m.start, err = hex(startS, 64); err != nil {
		return mapping{}, fmt.Errorf("maps: bad start %q", startS)
	}
	if m.end, err = hex(endS, 64); err != nil || m.end < m.start {
		return mapping{}, fmt.Errorf("maps: bad end %q", endS)
	}
	if m.offset, err = hex(fields[2], 64); err != nil {
		return mapping{}, fmt.Errorf("maps: bad offset %q", fields[2])
	}
	majS, minS, ok := strings.Cut(fields[3], ":")
	if !ok {
		return mapping{}, fmt.Errorf("maps: bad device %q", fields[3])
	}
	maj, err1 := hex(majS, 32)
	minor, err2 := hex(minS, 32)
	if err1 != nil || err2 != nil {
		return mapping{}, fmt.Errorf("maps: bad device %q", fields[3])
	}
	m.major, m.minor = uint32(maj), uint32(minor)
	if m.inode, err = strconv.ParseUint(fields[4], 10, 64); err != nil {
		return mapping{}, fmt.Errorf("maps: bad inode %q", fields[4])
	}
	m.path = strings.TrimLeft(rest, " ")
	return m, nil
}
