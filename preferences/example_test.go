package preferences_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
)

// A signup, its confirmation, and the proof: the ledger verifies.
func ExampleStore_Signup() {
	dir, _ := os.MkdirTemp("", "consentbook")
	defer os.RemoveAll(dir)
	db, _ := bbolt.Open(filepath.Join(dir, "consentmail.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	defer db.Close()
	store, err := preferences.New(db, []byte("an example secret of at least 32 bytes"), time.Now)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	ctx := context.Background()
	store.CreateList(ctx, preferences.List{ID: "weekly", Name: "Weekly news", Purpose: "News once a week.",
		ConsentText: "I want the weekly news.", Public: true})

	var queued preferences.OptinRequest
	err = store.Signup(ctx, preferences.SignupInput{Email: "ana@example.org", IndexKey: "ana@example.org",
		Lists: []string{"weekly"}, IP: "192.0.2.1", UserAgent: "browser"},
		func(_ *bbolt.Tx, req preferences.OptinRequest) error { queued = req; return nil })
	if err != nil {
		panic(err)
	}
	res, _ := store.Confirm(ctx, preferences.ConfirmInput{Subscriber: queued.Subscriber, Lists: queued.Lists,
		Nonce: queued.Nonce, IP: "192.0.2.1", UserAgent: "browser"})
	v, _ := store.VerifyLedger(ctx)
	fmt.Println(res.Confirmed, v.OK, v.Events)
	// Output: [weekly] true 2
}
