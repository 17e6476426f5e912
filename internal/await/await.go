// Package await is the one wait-until helper of the tests: poll a
// condition until it holds or a generous deadline passes, instead of
// sleeping a guessed time. The machine running the tests may be slow
// and shared, so the deadline is long; a test waits only as long as the
// condition takes.
package await

import (
	"fmt"
	"time"
)

// Timeout is the default deadline of True.
const Timeout = 20 * time.Second

// T is the part of testing.TB that True uses.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
}

// True polls cond every millisecond until it reports true, and fails t
// with what (formatted with args) if it does not within Timeout.
func True(t T, cond func() bool, what string, args ...any) {
	t.Helper()
	if err := Within(Timeout, cond); err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}

// Within polls cond every millisecond (backing off to 20 ms) until it
// reports true or d passes.
func Within(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not true after %v", d)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
	return nil
}
