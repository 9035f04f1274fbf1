package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// ProcStat is a process's CPU time and resident memory.
type ProcStat struct {
	CPU    time.Duration
	RSSKiB int64
}

// ReadProcStat reads utime + stime from /proc/<pid>/stat and VmRSS from
// /proc/<pid>/status.
func ReadProcStat(pid int) (ProcStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, fmt.Errorf("harness: %w", err)
	}
	f, _, err := statFields(string(data))
	if err != nil {
		return ProcStat{}, fmt.Errorf("harness: /proc/%d/stat: %w", pid, err)
	}
	// After "pid (comm)", utime and stime are the 12th and 13th fields.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return ProcStat{}, fmt.Errorf("harness: /proc/%d/stat: bad utime/stime", pid)
	}
	return ProcStat{
		CPU:    time.Duration(utime+stime) * time.Second / clockTicks,
		RSSKiB: RSSKB(pid),
	}, nil
}

// statFields splits a /proc/<pid>/stat line after its "(comm)" and
// returns the fields from state onwards and the parent pid.
func statFields(line string) ([]string, int, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return nil, 0, fmt.Errorf("no comm")
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 13 {
		return nil, 0, fmt.Errorf("%d fields", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	return f, ppid, err
}

// Children returns the pids whose parent is pid: the external plugins a
// spire-server started.
func Children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if _, ppid, err := statFields(string(data)); err == nil && ppid == pid {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, child)
		}
	}
	return out
}

// Usage samples a process (a server) and its children (its plugins) over
// a window.
type Usage struct {
	pid     int
	start   time.Time
	server  ProcStat
	plugins ProcStat
}

// StartUsage starts a window on process pid and its children.
func StartUsage(pid int) *Usage {
	u := &Usage{pid: pid, start: time.Now()}
	u.server, u.plugins = u.read()
	return u
}

func (u *Usage) read() (server, plugins ProcStat) {
	server, _ = ReadProcStat(u.pid)
	for _, c := range Children(u.pid) {
		if s, err := ReadProcStat(c); err == nil {
			plugins.CPU += s.CPU
			plugins.RSSKiB += s.RSSKiB
		}
	}
	return server, plugins
}

// TotalCPU is the process's and its children's CPU percent.
func (w Window) TotalCPU() float64 { return w.ServerCPU + w.PluginCPU }

// Window is CPU use (percent of one core) over a window, and memory at
// its end.
type Window struct {
	ServerCPU, PluginCPU       float64
	ServerRSSKiB, PluginRSSKiB int64
	ServerCPUTime              time.Duration
	PluginCPUTime              time.Duration
}

// Stop ends the window. A nil Usage gives a zero Window.
func (u *Usage) Stop() Window {
	if u == nil {
		return Window{}
	}
	server, plugins := u.read()
	wall := time.Since(u.start).Seconds()
	w := Window{
		ServerCPUTime: server.CPU - u.server.CPU,
		PluginCPUTime: plugins.CPU - u.plugins.CPU,
		ServerRSSKiB:  server.RSSKiB,
		PluginRSSKiB:  plugins.RSSKiB,
	}
	if wall > 0 {
		w.ServerCPU = 100 * w.ServerCPUTime.Seconds() / wall
		w.PluginCPU = 100 * w.PluginCPUTime.Seconds() / wall
	}
	return w
}
