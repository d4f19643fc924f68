package queue

import (
	"context"
	"fmt"
	"time"
)

// fillShared checks and defaults the settings both implementations share: visibility 1
// minute, 8 attempts, backoff from 5 seconds to 1 hour, polling every second, time.Now.
func fillShared(name string, visibility *time.Duration, maxAttempts *int, backoffBase, backoffMax, poll *time.Duration,
	now *func() time.Time) error {
	if *visibility < 0 || *maxAttempts < 0 || *backoffBase < 0 || *backoffMax < 0 || *poll < 0 {
		return fmt.Errorf("queue: negative %s field", name)
	}
	orDefault := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	orDefault(visibility, time.Minute)
	orDefault(backoffBase, 5*time.Second)
	orDefault(backoffMax, time.Hour)
	orDefault(poll, time.Second)
	if *maxAttempts == 0 {
		*maxAttempts = 8
	}
	if *now == nil {
		*now = time.Now
	}
	return nil
}

// reserveLoop is the blocking part of Reserve shared by the implementations: it calls
// try until try returns deliveries or an error; between calls it waits for the wake
// channel try returned, try's delay (the clock's next event), ctx or closed. waiting,
// when not nil, is called before each wait and returns what to call after it.
func reserveLoop(ctx context.Context, closed <-chan struct{},
	try func() (ds []Delivery, wake <-chan struct{}, wait time.Duration, err error),
	waiting func() (done func())) ([]Delivery, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		select {
		case <-closed:
			return nil, ErrClosed
		default:
		}
		ds, wake, wait, err := try()
		if err != nil || len(ds) > 0 {
			return ds, err
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		done := func() {}
		if waiting != nil {
			done = waiting()
		}
		select {
		case <-ctx.Done():
		case <-closed:
		case <-wake:
		case <-timer.C:
		}
		done()
	}
}
