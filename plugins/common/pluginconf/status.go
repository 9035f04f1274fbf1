package pluginconf

import (
	"fmt"
	"strings"

	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Status collects what building a configuration found: every problem that
// makes it unusable, and notes (warnings, facts worth knowing) that do not.
// Building goes on after a problem, so that one Configure or Validate call
// names every problem at once.
//
// The zero Status holds nothing and is ready to use.
type Status struct {
	problems []string
	notes    []string
	// failed is an error that stopped building before any key was
	// checked (a syntax error, an unknown key); it is returned as is.
	failed error
}

// ReportError records a problem that makes the configuration unusable.
// Messages are lowercase, name the key, and have no trailing period.
func (s *Status) ReportError(message string) {
	s.problems = append(s.problems, message)
}

// ReportErrorf is ReportError with a format.
func (s *Status) ReportErrorf(format string, args ...any) {
	s.ReportError(fmt.Sprintf(format, args...))
}

// ReportInfo records a note for the operator (a warning, a default taken)
// that does not make the configuration unusable.
func (s *Status) ReportInfo(message string) {
	s.notes = append(s.notes, message)
}

// ReportInfof is ReportInfo with a format.
func (s *Status) ReportInfof(format string, args ...any) {
	s.ReportInfo(fmt.Sprintf(format, args...))
}

// HasError reports whether the configuration is unusable.
func (s *Status) HasError() bool {
	return s.failed != nil || len(s.problems) > 0
}

// Problems returns the problems reported so far, in order.
func (s *Status) Problems() []string {
	return append([]string(nil), s.problems...)
}

// Notes returns the notes reported so far, in order.
func (s *Status) Notes() []string {
	return append([]string(nil), s.notes...)
}

// Err returns nil when no problem was reported. Otherwise it returns an
// InvalidArgument status whose message is "invalid configuration: " and
// every problem, in the order reported, separated by "; ". A decoding
// error that stopped Build is returned unchanged.
func (s *Status) Err() error {
	switch {
	case s.failed != nil:
		return s.failed
	case len(s.problems) > 0:
		return status.Error(codes.InvalidArgument, "invalid configuration: "+strings.Join(s.problems, "; "))
	}
	return nil
}

// ValidateResponse is the answer to a Validate call: valid when no problem
// was reported. Its first note is the message Configure would fail with
// (every problem), or "configuration valid"; the notes reported with
// ReportInfo follow.
func (s *Status) ValidateResponse() *configv1.ValidateResponse {
	first := "configuration valid"
	if err := s.Err(); err != nil {
		first = status.Convert(err).Message()
	}
	return &configv1.ValidateResponse{
		Valid: !s.HasError(),
		Notes: append([]string{first}, s.notes...),
	}
}
