package kubeedge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/edgeid/edgeid/internal/fsutil"

	"github.com/hashicorp/go-hclog"
)

// Limits of a deny-list file.
const (
	// maxDenyListBytes bounds the whole file (about 4,000 lines of
	// 253-character node names).
	maxDenyListBytes = 1 << 20
	// maxDenyListLineBytes bounds one line, comment included.
	maxDenyListLineBytes = 1024
	// maxDenyListProblems bounds how many bad lines one error names; the
	// rest are counted.
	maxDenyListProblems = 50
)

// Entry kinds of a deny-list file.
const (
	denyKindNode   = "node"
	denyKindSerial = "serial"
)

// denyList is one parsed deny-list file: node names and normalised
// certificate serials, each with the line that denies it.
type denyList struct {
	nodes   map[string]int
	serials map[string]int
}

// emptyDenyList denies nothing.
var emptyDenyList = &denyList{nodes: map[string]int{}, serials: map[string]int{}}

// parseDenyList parses the deny-list file format:
//
//	# comment
//	node edge-lost-0042          # a Kubernetes Node name
//	serial 5c:0f:fe:e1:23:4      # a node certificate serial (hex)
//
// One entry per line, a kind and a value separated by spaces or tabs; '#'
// starts a comment (a whole line, or after the value); blank lines are
// ignored; lines may end in CRLF. Node names are lowercased and must be
// valid Kubernetes Node names; serials are normalised as in
// deny_cert_serials. The file must be UTF-8 without control characters.
// Every bad line is reported with its number (the first
// maxDenyListProblems of them), and nothing of a bad file is used.
func parseDenyList(data []byte) (*denyList, error) {
	if len(data) > maxDenyListBytes {
		return nil, fmt.Errorf("file is %d bytes, over the %d byte limit", len(data), maxDenyListBytes)
	}
	out := &denyList{nodes: map[string]int{}, serials: map[string]int{}}
	var problems []string
	dropped := 0
	bad := func(line int, format string, args ...any) {
		if len(problems) >= maxDenyListProblems {
			dropped++
			return
		}
		problems = append(problems, fmt.Sprintf("line %d: %s", line, fmt.Sprintf(format, args...)))
	}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		raw := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		if len(raw) > maxDenyListLineBytes {
			bad(lineNo, "line is %d bytes, over the %d byte limit", len(raw), maxDenyListLineBytes)
			continue
		}
		if !utf8.Valid(raw) {
			bad(lineNo, "not valid UTF-8")
			continue
		}
		line := string(raw)
		if i := strings.IndexFunc(line, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }); i >= 0 {
			bad(lineNo, "control character %q at column %d", line[i], i+1)
			continue
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			bad(lineNo, "want \"node <name>\" or \"serial <hex>\", got %d fields", len(fields))
			continue
		}
		switch kind, value := fields[0], fields[1]; kind {
		case denyKindNode:
			name, err := normalizeNodeName(value)
			if err != nil {
				bad(lineNo, "%v", err)
				continue
			}
			if _, dup := out.nodes[name]; !dup {
				out.nodes[name] = lineNo
			}
		case denyKindSerial:
			serial, err := normalizeSerial(value)
			if err != nil {
				bad(lineNo, "%v", err)
				continue
			}
			if _, dup := out.serials[serial]; !dup {
				out.serials[serial] = lineNo
			}
		default:
			bad(lineNo, "unknown entry kind %q (want %q or %q)", kind, denyKindNode, denyKindSerial)
		}
	}
	if dropped > 0 {
		problems = append(problems, fmt.Sprintf("and %d more bad lines", dropped))
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

// fileID identifies one version of a file: a replaced file (rename) has a
// new inode, an edited one a new size, mtime or ctime.
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	if !fi.Mode().IsRegular() {
		// A FIFO or device would block or never end.
		return fileID{}, fmt.Errorf("%s is not a regular file", path)
	}
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
		id.ctime = st.Ctim.Nano()
	}
	return id, nil
}

// denyFile is deny_list_file: the last good list, re-read whenever the
// file's identity (device, inode, size, mtime, ctime) changes. A file that
// cannot be read or parsed never replaces the last good list: the error is
// logged once per version of the file and the old entries stay in force.
//
// Readers (every attestation) take the list from an atomic pointer after a
// stat; only a changed file takes the reload lock, and an attestation that
// finds another one reloading uses the list it has.
type denyFile struct {
	path   string
	logger hclog.Logger

	list atomic.Pointer[denyList]
	// seen is the identity of the version last read, good or bad; nil
	// after an error that says nothing about the content (stat failed).
	seen atomic.Pointer[fileID]

	reload  sync.Mutex
	lastErr string // guarded by reload: the error last logged
}

// loadDenyFile reads and parses path; any problem is an error, for
// Configure to refuse the configuration.
func loadDenyFile(path string) (*denyFile, error) {
	d := &denyFile{path: path, logger: hclog.NewNullLogger()}
	id, err := statID(path)
	if err != nil {
		return nil, err
	}
	raw, err := fsutil.ReadFileLimited(path, maxDenyListBytes)
	if err != nil {
		return nil, err
	}
	list, err := parseDenyList(raw)
	if err != nil {
		return nil, err
	}
	d.list.Store(list)
	d.seen.Store(&id)
	return d, nil
}

// current returns the deny list in force, after checking whether the file
// changed.
func (d *denyFile) current() *denyList {
	d.check()
	return d.list.Load()
}

// check re-reads the file if it changed since it was last read.
func (d *denyFile) check() {
	if id, err := statID(d.path); err == nil {
		if seen := d.seen.Load(); seen != nil && *seen == id {
			return
		}
	}
	if !d.reload.TryLock() {
		return // another attestation or the watcher is reloading
	}
	defer d.reload.Unlock()
	d.refresh()
}

// refresh does the reload; the caller holds d.reload.
func (d *denyFile) refresh() {
	id, err := statID(d.path)
	if err != nil {
		d.seen.Store(nil)
		d.failed(err)
		return
	}
	if seen := d.seen.Load(); seen != nil && *seen == id {
		return
	}
	raw, err := fsutil.ReadFileLimited(d.path, maxDenyListBytes)
	if err == nil {
		var list *denyList
		if list, err = parseDenyList(raw); err == nil {
			d.seen.Store(&id)
			old := d.list.Swap(list)
			d.lastErr = ""
			d.logger.Info("Deny list file reloaded", "path", d.path, "node_names", len(list.nodes), "cert_serials", len(list.serials), "previous_node_names", len(old.nodes), "previous_cert_serials", len(old.serials))
			return
		}
	}
	// The content of this version is bad: remember it, so that it is not
	// read again until it changes.
	d.seen.Store(&id)
	d.failed(err)
}

// failed logs a reload error once, keeping the last good list.
func (d *denyFile) failed(err error) {
	msg := err.Error()
	if msg == d.lastErr {
		return
	}
	d.lastErr = msg
	list := d.list.Load()
	d.logger.Error("Deny list file is unusable; keeping the last good list", "path", d.path, "error", msg, "node_names", len(list.nodes), "cert_serials", len(list.serials))
}

// watch checks the file every interval until ctx ends, so that a change
// (and any error in it) shows in the log even when no agent attests.
func (d *denyFile) watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.check()
		}
	}
}
