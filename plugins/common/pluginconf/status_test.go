package pluginconf

import (
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStatusEmpty(t *testing.T) {
	var s Status
	if s.HasError() || s.Err() != nil {
		t.Fatalf("zero Status has an error: %v", s.Err())
	}
	resp := s.ValidateResponse()
	if !resp.Valid || !reflect.DeepEqual(resp.Notes, []string{"configuration valid"}) {
		t.Fatalf("ValidateResponse = %v", resp)
	}
}

func TestStatusCollectsEveryProblem(t *testing.T) {
	var s Status
	s.ReportInfo("note one")
	s.ReportError("a is required")
	s.ReportErrorf("b %q is not a number", "x")
	s.ReportInfof("note %d", 2)
	if !s.HasError() {
		t.Fatal("HasError = false after two problems")
	}
	err := s.Err()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || st.Message() != `invalid configuration: a is required; b "x" is not a number` {
		t.Fatalf("Err = %v", err)
	}
	if got, want := s.Problems(), []string{"a is required", `b "x" is not a number`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Problems = %q, want %q", got, want)
	}
	if got, want := s.Notes(), []string{"note one", "note 2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Notes = %q, want %q", got, want)
	}
	resp := s.ValidateResponse()
	want := []string{`invalid configuration: a is required; b "x" is not a number`, "note one", "note 2"}
	if resp.Valid || !reflect.DeepEqual(resp.Notes, want) {
		t.Fatalf("ValidateResponse = %v, want invalid with notes %q", resp, want)
	}
}

func TestStatusNotesAloneAreValid(t *testing.T) {
	var s Status
	s.ReportInfo("the check is off")
	if s.HasError() || s.Err() != nil {
		t.Fatalf("a note made the configuration invalid: %v", s.Err())
	}
	resp := s.ValidateResponse()
	if !resp.Valid || !reflect.DeepEqual(resp.Notes, []string{"configuration valid", "the check is off"}) {
		t.Fatalf("ValidateResponse = %v", resp)
	}
}

func TestStatusCopiesOut(t *testing.T) {
	var s Status
	s.ReportError("a")
	s.Problems()[0] = "changed"
	if s.Problems()[0] != "a" {
		t.Fatal("Problems returned the Status's own slice")
	}
}
