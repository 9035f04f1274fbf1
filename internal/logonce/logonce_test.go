package logonce

import (
	"testing"
	"time"
)

func TestOncePerKeyPerInterval(t *testing.T) {
	l := New[string](time.Minute)
	t0 := time.Unix(1000, 0)
	if !l.Allow("a", t0) || l.Allow("a", t0.Add(59*time.Second)) || !l.Allow("b", t0) {
		t.Fatal("first event of a key must pass, a repeat within the interval must not")
	}
	if !l.Allow("a", t0.Add(61*time.Second)) {
		t.Fatal("a repeat after the interval must pass")
	}
}

func TestBoundedMemory(t *testing.T) {
	l := New[int](time.Minute)
	l.maxKeys = 3
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		l.Allow(i, t0)
		if len(l.last) > 3 {
			t.Fatalf("%d keys held, bound 3", len(l.last))
		}
	}
}
