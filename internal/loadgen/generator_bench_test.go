package loadgen

import "testing"

// BenchmarkGenerate reports the cost of one valid, signed event line.
func BenchmarkGenerate(b *testing.B) {
	g, err := New(Config{Seed: 1, Count: b.N, Customers: 1000, Start: testStart})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for line := range g.All() {
		n += len(line)
	}
	b.SetBytes(int64(n / max(b.N, 1)))
	if err := g.Err(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGenerateMixed adds duplicates, conflicts, displacement and bad inputs except oversize.
func BenchmarkGenerateMixed(b *testing.B) {
	g, err := New(Config{Seed: 1, Count: b.N, Customers: 1000, Start: testStart, DupRatio: 0.05, ConflictRatio: 0.01,
		OOORatio: 0.1, BadRatio: 0.02, BadKinds: []BadKind{BadNotJSON, BadMissingCustomerID, BadSignature, BadUnknownKey}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range g.All() {
	}
	if err := g.Err(); err != nil {
		b.Fatal(err)
	}
}
