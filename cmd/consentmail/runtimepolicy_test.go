package main

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestSoftMemoryLimit(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		live, other uint64
		want        int64
	}{
		{live: 8 * mb, other: 10 * mb, want: gcFloor},   // a sending process: the floor
		{live: 17 * mb, other: 10 * mb, want: gcFloor},  // 44 MiB is still more than 2×17 + 10
		{live: 60 * mb, other: 12 * mb, want: 132 * mb}, // a flood of signups: Go's default, never tighter
	} {
		if got := softMemoryLimit(memUse{live: c.live, other: c.other}, gcFloor); got != c.want {
			t.Errorf("live %d MiB, other %d MiB: limit %d MiB, want %d MiB", c.live/mb, c.other/mb, got/mb, c.want/mb)
		}
	}
}

// TestMemoryLimitFollowsTheLiveHeap runs the tuner of a real process: the limit is the
// floor at first, rises past twice a live heap grown beyond it, and is lifted when
// the tuner stops.
func TestMemoryLimitFollowsTheLiveHeap(t *testing.T) {
	t.Setenv("GOGC", "") // the policy applies only where GOGC and GOMEMLIMIT are unset
	t.Setenv("GOMEMLIMIT", "")
	oldPercent := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(math.MaxInt64) })

	limit := func() int64 { return debug.SetMemoryLimit(-1) }
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: limit %d MiB", what, limit()>>20)
			}
			runtime.GC()
			time.Sleep(gcTuneEvery / 4)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	collectLessOften(ctx)
	if p := debug.SetGCPercent(gcPercent); p != gcPercent {
		t.Errorf("GOGC %d, want %d", p, gcPercent)
	}
	waitFor("at least the floor at first", func() bool { return limit() >= gcFloor && limit() < math.MaxInt64 })

	const liveBytes = 96 << 20
	live := make([]byte, liveBytes)
	waitFor("at least twice the live heap", func() bool { return limit() >= 2*liveBytes })
	runtime.KeepAlive(live)

	cancel()
	waitFor("no limit once the tuner stops", func() bool { return limit() == math.MaxInt64 })
}

// TestCollectorLeftToTheOperator: with GOGC or GOMEMLIMIT set, neither the collector's
// target nor its limit is touched.
func TestCollectorLeftToTheOperator(t *testing.T) {
	oldPercent := debug.SetGCPercent(77)
	oldLimit := debug.SetMemoryLimit(500 << 20)
	t.Cleanup(func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) })
	for _, env := range [][2]string{{"GOGC", "77"}, {"GOMEMLIMIT", "500MiB"}} {
		t.Setenv("GOGC", "")
		t.Setenv("GOMEMLIMIT", "")
		t.Setenv(env[0], env[1])
		ctx, cancel := context.WithCancel(context.Background())
		collectLessOften(ctx)
		time.Sleep(3 * gcTuneEvery) // negative assertion: a tuner, were one started, would have set the limit by now
		cancel()
		if p := debug.SetGCPercent(77); p != 77 {
			t.Errorf("%s set: GOGC became %d", env[0], p)
		}
		if l := debug.SetMemoryLimit(-1); l != 500<<20 {
			t.Errorf("%s set: memory limit became %d MiB", env[0], l>>20)
		}
	}
}
