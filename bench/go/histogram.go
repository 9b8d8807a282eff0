package main

import (
	"math/bits"
	"sort"
	"sync"
	"time"
)

// histogram is a log-linear latency histogram in microseconds: exact below 64 µs,
// then 32 sub-buckets per power of two (about 3 % resolution). Its buckets are
// printed so the runner can merge several load processes exactly.
type histogram struct {
	mu     sync.Mutex
	counts map[uint32]uint64
	n      uint64
	max    uint64
}

func newHistogram() *histogram { return &histogram{counts: map[uint32]uint64{}} }

func bucketOf(us uint64) uint32 {
	if us < 64 {
		return uint32(us)
	}
	e := uint32(bits.Len64(us) - 1) // >= 6
	sub := uint32(us>>(e-5)) & 31
	return 64 + (e-6)*32 + sub
}

func bucketLow(b uint32) uint64 {
	if b < 64 {
		return uint64(b)
	}
	e := (b-64)/32 + 6
	sub := uint64((b - 64) % 32)
	return (32 + sub) << (e - 5)
}

func (h *histogram) record(d time.Duration) {
	us := uint64(d.Microseconds())
	h.mu.Lock()
	h.counts[bucketOf(us)]++
	h.n++
	if us > h.max {
		h.max = us
	}
	h.mu.Unlock()
}

// snapshot returns the summary the runner merges: count, max, percentiles and
// the raw buckets as [lower_bound_us, count] pairs.
func (h *histogram) snapshot() map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := make([]uint32, 0, len(h.counts))
	for k := range h.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	buckets := make([][2]uint64, 0, len(keys))
	for _, k := range keys {
		buckets = append(buckets, [2]uint64{bucketLow(k), h.counts[k]})
	}
	pct := func(p float64) float64 {
		if h.n == 0 {
			return 0
		}
		rank := uint64(p * float64(h.n))
		if rank >= h.n {
			rank = h.n - 1
		}
		var seen uint64
		for _, b := range buckets {
			seen += b[1]
			if seen > rank {
				return float64(b[0]) / 1000
			}
		}
		return float64(h.max) / 1000
	}
	return map[string]any{
		"count": h.n, "max_ms": float64(h.max) / 1000,
		"p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
		"buckets_us": buckets,
	}
}
