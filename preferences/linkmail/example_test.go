package linkmail_test

import (
	"context"
	"fmt"

	"consentmail/preferences/linkmail"
	"consentmail/queue"
)

// printQueue is a queue that prints what it is given.
type printQueue struct{}

func (printQueue) Enqueue(_ context.Context, msgs ...queue.Message) error {
	for _, m := range msgs {
		fmt.Println(m.Kind, m.Priority == queue.High, linkmail.ForSubscriber(m, "sub_0123"), linkmail.ForSubscriber(m, "sub_9999"))
	}
	return nil
}

// The preference centre asks for a data link; the message goes on the High lane, and
// only linkmail reads its body (an erasure asks ForSubscriber).
func ExampleLinks_QueueDataLink() {
	links := linkmail.NewLinks(printQueue{})
	if err := links.QueueDataLink(context.Background(), "sub_0123"); err != nil {
		fmt.Println(err)
	}
	// Output:
	// datalink true true false
}
