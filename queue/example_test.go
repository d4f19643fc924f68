package queue_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/queue"
)

func ExampleBolt() {
	dir, err := os.MkdirTemp("", "queue-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// The service opens its one bbolt file; the queue keeps its own buckets in it.
	db, err := bbolt.Open(filepath.Join(dir, "consentmail.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	q, err := queue.NewBolt(db, queue.BoltOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()

	// A campaign send, then a confirmation mail queued in the signup's own transaction.
	if err := q.Enqueue(ctx, queue.Message{Kind: "campaign", Priority: queue.Normal, Body: []byte("c-1")}); err != nil {
		log.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		// ... write the subscriber and the ledger event here ...
		return q.EnqueueTx(tx, queue.Message{Kind: "optin", Priority: queue.High, Body: []byte("s-42")})
	})
	if err != nil {
		log.Fatal(err)
	}

	ds, err := q.Reserve(ctx, 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range ds {
		fmt.Printf("%s %s\n", d.Kind, d.Body)
	}
	if err := q.Ack(ctx, ds...); err != nil {
		log.Fatal(err)
	}
	st, _ := q.Stats(ctx)
	fmt.Printf("%+v\n", st)
	// Output:
	// optin s-42
	// campaign c-1
	// {Ready:0 High:0 Inflight:0 Dead:0}
}
