package deepstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Each attestation has a byte budget (max_attestation_bytes: every byte read
// from /proc and from config files) and a time budget (attestation_timeout,
// the deadline of its context). Hashing executables, scripts and models
// counts against time only. Once either is spent, the attestation halts:
// every later read fails at once, no further warnings are logged, and
// Attest returns ResourceExhausted instead of a partial selector set.

var (
	errByteBudget = errors.New("byte budget exhausted")
	errTimeBudget = errors.New("time budget exhausted")
)

// halted reports the error that stopped the attestation, if any: a spent
// budget, or the caller's own cancellation.
func (a *attestation) halted() error {
	if a.halt != nil {
		return a.halt
	}
	if a.ctx.Err() != nil {
		a.halt = context.Cause(a.ctx)
		return a.halt
	}
	return nil
}

// warn logs a warning unless the attestation has halted: a halted
// attestation logs one line, in run.
func (a *attestation) warn(log interface{ Warn(string, ...any) }, msg string, args ...any) {
	if a.halted() == nil {
		log.Warn(msg, args...)
	}
}

// meteredReader reads at most max bytes of one file and charges every byte
// to the attestation's budget. Reading past max fails with errTooLarge (a
// problem of that file); reading past the budget halts the attestation.
type meteredReader struct {
	a    *attestation
	r    io.Reader
	max  int64
	left int64
}

func (a *attestation) meter(r io.Reader, max int64) *meteredReader {
	return &meteredReader{a: a, r: r, max: max, left: max}
}

func (m *meteredReader) Read(b []byte) (int, error) {
	if err := m.a.halted(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	if m.left == 0 || m.a.bytesLeft == 0 {
		// At a limit: the file may still end exactly here.
		var probe [1]byte
		n, err := m.r.Read(probe[:])
		if n == 0 && err != nil {
			return 0, err
		}
		m.a.bytesRead += int64(n)
		if m.left == 0 {
			return 0, fmt.Errorf("%w: more than %d bytes", errTooLarge, m.max)
		}
		m.a.halt = errByteBudget
		return 0, errByteBudget
	}
	if int64(len(b)) > m.left {
		b = b[:m.left]
	}
	if int64(len(b)) > m.a.bytesLeft {
		b = b[:m.a.bytesLeft]
	}
	n, err := m.r.Read(b)
	m.left -= int64(n)
	m.a.bytesLeft -= int64(n)
	m.a.bytesRead += int64(n)
	return n, err
}

// readAll reads r through the meter.
func (a *attestation) readAll(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(a.meter(r, max))
	if err != nil {
		return nil, err
	}
	return data, nil
}

// readProcFile reads a /proc file within max bytes and the budget.
func (a *attestation) readProcFile(name string, max int64) ([]byte, error) {
	if err := a.halted(); err != nil {
		return nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return a.readAll(f, max)
}

// readRootFile reads the regular file p of a process's root within max
// bytes and the budget.
func (a *attestation) readRootFile(root *rootFS, p string, max int64) ([]byte, error) {
	if err := a.halted(); err != nil {
		return nil, err
	}
	f, err := root.open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return a.readAll(f, max)
}

// ctxReader fails reads once ctx is done, so that hashing a large file
// stops at the deadline.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(b)
}
