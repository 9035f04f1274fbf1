package pluginconf

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	bounded := Duration{Default: 5 * time.Second, Min: 100 * time.Millisecond, Max: time.Minute}
	positive := Duration{Default: time.Minute, Want: `a positive duration such as "30s"`}
	tests := []struct {
		name    string
		text    string
		rule    Duration
		want    time.Duration
		problem string // empty = accepted
	}{
		{"empty takes the default", "", bounded, 5 * time.Second, ""},
		{"in range", "250ms", bounded, 250 * time.Millisecond, ""},
		{"lower bound included", "100ms", bounded, 100 * time.Millisecond, ""},
		{"upper bound included", "1m", bounded, time.Minute, ""},
		{"compound", "1h30m", Duration{}, 90 * time.Minute, ""},
		{"not a duration", "soon", bounded, 5 * time.Second, `timeout: "soon" is not a duration such as "5s"`},
		{"example overrides", "5", Duration{Example: "30s"}, 0, `timeout: "5" is not a duration such as "30s"`},
		{"above range", "2m", bounded, 5 * time.Second, "timeout: 2m0s is out of range (100ms..1m0s)"},
		{"below range", "10ms", bounded, 5 * time.Second, "timeout: 10ms is out of range (100ms..1m0s)"},
		{"zero refused by default", "0s", Duration{Default: time.Second}, time.Second, "timeout: 0s must be positive"},
		{"negative refused", "-1s", Duration{}, 0, "timeout: -1s must be positive"},
		{"zero allowed", "0s", Duration{Default: time.Hour, AllowZero: true}, 0, ""},
		{"negative refused with zero allowed", "-1s", Duration{AllowZero: true}, 0, "timeout: -1s must be at least 0s"},
		{"below min without max", "1s", Duration{Min: 2 * time.Second}, 0, "timeout: 1s must be at least 2s"},
		{"want replaces malformed", "soon", positive, time.Minute, `timeout "soon" must be a positive duration such as "30s"`},
		{"want replaces range", "0s", positive, time.Minute, `timeout "0s" must be a positive duration such as "30s"`},
		{"want accepts", "45s", positive, 45 * time.Second, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Status
			got := s.Duration("timeout", tt.text, tt.rule)
			if got != tt.want {
				t.Errorf("value = %v, want %v", got, tt.want)
			}
			problems := s.Problems()
			switch {
			case tt.problem == "" && len(problems) != 0:
				t.Errorf("problems %q, want none", problems)
			case tt.problem != "" && (len(problems) != 1 || problems[0] != tt.problem):
				t.Errorf("problems %q, want [%q]", problems, tt.problem)
			}
		})
	}
}
