package campaigns_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/queue/campaigns"
	"consentmail/templates"
)

// A template is checked when it is saved: one that would fail at send time is refused
// with the part and line to fix.
func ExampleStore_Create() {
	dir, _ := os.MkdirTemp("", "campaigns")
	defer os.RemoveAll(dir)
	db, _ := bbolt.Open(filepath.Join(dir, "consentmail.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	defer db.Close()
	store, err := campaigns.NewStore(db, time.Now)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	_, err = store.Create(ctx, campaigns.Template{Name: "Monthly", Subject: "News",
		HTML: "<p>Hello</p>\n<p>{{.Subscriber.Nmae}}</p>"})
	var te *templates.TemplateError
	fmt.Println(errors.As(err, &te), te.Part, te.Line)
	saved, err := store.Create(ctx, campaigns.Template{Name: "Monthly", Subject: "News for {{.Subscriber.Name}}",
		HTML: "<p>Hello {{.Subscriber.Name}}</p>"})
	fmt.Println(err, saved.Name)
	// Output:
	// true html 2
	// <nil> Monthly
}
