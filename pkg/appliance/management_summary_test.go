package appliance

import (
	"testing"
	"time"
)

func TestRTTPercentiles(t *testing.T) {
	bounds := []float64{0.001, 0.002, 0.004, 0.008}
	prev := helloBaseline{buckets: []uint64{5, 5, 5, 5}, count: 5}
	// 100 more: 50 in (0,1ms], 49 in (1,2ms], 1 in (4,8ms].
	cur := helloBaseline{buckets: []uint64{55, 104, 104, 105}, count: 105}
	p50, p99, ok := rttPercentiles(bounds, prev, cur)
	if !ok {
		t.Fatal("no percentiles")
	}
	if p50 != time.Millisecond {
		t.Errorf("p50 = %v, want 1ms", p50)
	}
	if p99 < time.Millisecond || p99 > 2*time.Millisecond {
		t.Errorf("p99 = %v, want within (1ms, 2ms]", p99)
	}
	if _, _, ok := rttPercentiles(bounds, cur, cur); ok {
		t.Error("percentiles of an empty period")
	}
	if got := millis(612 * time.Microsecond); got != "0.612ms" {
		t.Errorf("millis = %q", got)
	}
}
