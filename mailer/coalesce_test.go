package mailer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

// recordingSender records the batches it is given and holds the first send until
// released, delegating to a real mailer.Sender.
type recordingSender struct {
	next    *mailer.Sender
	mu      sync.Mutex
	batches []int
	first   chan struct{} // closed when the first send began
	release chan struct{} // the first send waits for it
	once    sync.Once
}

func (r *recordingSender) hold() {
	began := false
	r.once.Do(func() { began = true; close(r.first) })
	if began {
		<-r.release
	}
}

func (r *recordingSender) Send(ctx context.Context, m *mailer.Message) error {
	r.mu.Lock()
	r.batches = append(r.batches, 1)
	r.mu.Unlock()
	r.hold()
	return r.next.Send(ctx, m)
}

func (r *recordingSender) SendBatchFunc(ctx context.Context, n int, next func(int) (*mailer.Message, error)) []error {
	r.mu.Lock()
	r.batches = append(r.batches, n)
	r.mu.Unlock()
	r.hold()
	return r.next.SendBatchFunc(ctx, n, next)
}

// While a message is on the wire, those handed in meanwhile leave together in one
// batch, each caller getting its own result (a rejected recipient's error goes to
// that caller alone); alone, a message leaves at once.
func TestCoalescerBatchesWhatArrivesMeanwhile(t *testing.T) {
	sink := smtptest.New(t)
	sink.FailRcpt(smtptest.Reject(550, "bad@example.org"))
	relays, err := mailer.ParseRelays(sink.URL())
	if err != nil {
		t.Fatal(err)
	}
	real, err := mailer.NewSender(relays, mailer.Options{HeloName: "test.localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	rec := &recordingSender{next: real, first: make(chan struct{}), release: make(chan struct{})}
	c := mailer.NewCoalescer(rec, 1, 10)
	defer c.Close()
	msg := func(to string) *mailer.Message {
		return &mailer.Message{From: "news@example.org", To: to, Subject: "Hi", Text: "Hello\n"}
	}
	errs := make([]error, 10)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = c.Send(context.Background(), msg("first@example.org")) }()
	<-rec.first // the first message is on the wire
	for i := 1; i < 10; i++ {
		to := fmt.Sprintf("p%d@example.org", i)
		if i == 5 {
			to = "bad@example.org"
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Send(context.Background(), msg(to)) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Waiting() < 9 { // all nine handed in, waiting for the next batch
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 9 messages handed in", c.Waiting())
		}
		time.Sleep(time.Millisecond)
	}
	close(rec.release)
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == 5 && !errors.As(err, new(*mailer.SendError)):
			t.Errorf("the rejected recipient's caller got %v", err)
		case i != 5 && err != nil:
			t.Errorf("message %d: %v", i, err)
		}
	}
	sink.WaitFor(t, 9, 10*time.Second)
	rec.mu.Lock()
	got := fmt.Sprint(rec.batches)
	rec.mu.Unlock()
	if got != "[1 9]" {
		t.Fatalf("batches %s, want [1 9]: the first alone, the nine that came meanwhile together", got)
	}
}
