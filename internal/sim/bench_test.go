package sim

import "testing"

// BenchmarkSeed runs one seed per iteration (seeds 0, 1, 2, ...).
func BenchmarkSeed(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Check(uint64(i), Options{})
	}
}
