package pluginconf

import (
	"fmt"
	"time"
)

// Duration says which values a duration key accepts. Its zero value
// accepts any positive duration and defaults to zero.
type Duration struct {
	// Default is the value of an unset (empty) key.
	Default time.Duration
	// Min and Max bound the value; a zero Max means no upper bound. Min is
	// zero or positive. With a zero Min, zero is refused unless AllowZero
	// is set; negative values are always refused.
	Min, Max  time.Duration
	AllowZero bool
	// Example is a valid value shown in the problem for text that is not a
	// duration; default Default.String().
	Example string
	// Want, when set, replaces the problems described below with one,
	// `<key> "<text>" must be <Want>`, for any refused value, as in
	// `max_clock_skew "soon" must be a positive duration such as "30s"`.
	Want string
}

// Duration parses text, the value of key, as a Go duration such as "30s"
// or "1h30m" and checks it against d. An empty text yields d.Default. A
// refused value is reported to s, and d.Default is returned in its place.
//
// Without d.Want the problems are
//
//	<key>: "<text>" is not a duration such as "<example>"
//	<key>: <value> is out of range (<min>..<max>)
//	<key>: <value> must be at least <min>
func (s *Status) Duration(key, text string, d Duration) time.Duration {
	if text == "" {
		return d.Default
	}
	v, err := time.ParseDuration(text)
	if err != nil {
		s.refuseDuration(key, text, d, fmt.Sprintf("%s: %q is not a duration such as %q", key, text, d.example()))
		return d.Default
	}
	if problem := d.rangeProblem(key, v); problem != "" {
		s.refuseDuration(key, text, d, problem)
		return d.Default
	}
	return v
}

func (s *Status) refuseDuration(key, text string, d Duration, problem string) {
	if d.Want != "" {
		problem = fmt.Sprintf("%s %q must be %s", key, text, d.Want)
	}
	s.ReportError(problem)
}

// rangeProblem describes why v is out of d's range, or returns "".
func (d Duration) rangeProblem(key string, v time.Duration) string {
	lowest := d.Min
	if lowest == 0 && !d.AllowZero {
		lowest = time.Nanosecond
	}
	inRange := v >= lowest && (d.Max == 0 || v <= d.Max)
	switch {
	case inRange:
		return ""
	case d.Max != 0:
		return fmt.Sprintf("%s: %s is out of range (%s..%s)", key, v, d.Min, d.Max)
	case lowest == time.Nanosecond:
		return fmt.Sprintf("%s: %s must be positive", key, v)
	}
	return fmt.Sprintf("%s: %s must be at least %s", key, v, d.Min)
}

func (d Duration) example() string {
	if d.Example != "" {
		return d.Example
	}
	return d.Default.String()
}
