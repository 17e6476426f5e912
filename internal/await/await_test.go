package await

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

type fakeT struct{ failed string }

func (*fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestWithin(t *testing.T) {
	var n atomic.Int32
	if err := Within(5*time.Second, func() bool { return n.Add(1) == 3 }); err != nil {
		t.Fatal(err)
	}
	if err := Within(10*time.Millisecond, func() bool { return false }); err == nil {
		t.Fatal("a condition that never holds passed")
	}
	var ft fakeT
	True(&ft, func() bool { return true }, "fine")
	if ft.failed != "" {
		t.Fatal(ft.failed)
	}
}
