// The Go runtime's settings of a consentmail process: its garbage collector's policy.
// Its scheduler slots are Go's default, one per CPU (README, Benchmarks: one more had
// helped signups once, and cost a campaign's sender a seventh of its CPU).

package main

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The garbage collector's policy of every process (unless GOGC or GOMEMLIMIT is set).
// A sending process's live heap is a few MB (jobs in hand, the key file's KEKs), and
// collecting it at Go's default (when the heap has doubled) cost a tenth of its CPU.
// So a process collects at gcPercent, within a soft limit of gcFloor bytes: a
// campaign's sender stays near 45 MB anonymous up to a million subscribers. The limit
// is raised as the live heap grows (a flood of signups holds many requests; a store of
// ten million holds 4 MB more in its key file and bbolt's freelist), so that the
// collector never runs more often than Go's default would: see softMemoryLimit.
const (
	gcPercent = 400
	gcFloor   = 44 << 20
	// gcTuneEvery is how often the live heap is looked at.
	gcTuneEvery = 100 * time.Millisecond
)

// collectLessOften applies the policy above until ctx ends. An operator who sets GOGC
// or GOMEMLIMIT has chosen the collector's policy: the runtime is left as they set it
// (GOGC=off with no limit means no collection, as Go documents it).
func collectLessOften(ctx context.Context) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(gcPercent)
	go func() {
		t := time.NewTicker(gcTuneEvery)
		defer t.Stop()
		m := newMemSamples()
		for {
			debug.SetMemoryLimit(softMemoryLimit(m.read(), gcFloor))
			select {
			case <-ctx.Done():
				// The process may go on (tests run servers in one process): no limit
				// stays behind without its tuner.
				debug.SetMemoryLimit(math.MaxInt64)
				return
			case <-t.C:
			}
		}
	}()
}

// memUse is what softMemoryLimit needs of the runtime's memory.
type memUse struct {
	live  uint64 // the heap marked live by the last collection
	other uint64 // what the runtime holds besides heap spans: stacks, metadata, buffers
}

// softMemoryLimit is the memory limit for use: floor, or, when the live heap has grown
// so far that floor would make the collector run more often than Go's default (at
// twice the live heap), what that default allows plus the rest of the runtime's memory.
func softMemoryLimit(u memUse, floor int64) int64 {
	return max(floor, int64(2*u.live+u.other))
}

type memSamples []metrics.Sample

func newMemSamples() memSamples {
	return memSamples{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
}

func (m memSamples) read() memUse {
	metrics.Read(m)
	v := func(i int) uint64 {
		if m[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return m[i].Value.Uint64()
	}
	heap := v(2) + v(3) + v(4) + v(5)
	other := uint64(0)
	if total := v(1); total > heap {
		other = total - heap
	}
	return memUse{live: v(0), other: other}
}
