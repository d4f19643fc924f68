package mailer_test

import (
	"context"
	"fmt"

	"consentmail/mailer"
)

func ExampleSender() {
	// A Catcher stands in for the relay, as in `consentmail dev`; in production the
	// relays come from CONSENTMAIL_SMTP_URL.
	catcher := mailer.NewCatcher(10)
	addr, err := catcher.Listen("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go catcher.Serve(ctx)

	relays, err := mailer.ParseRelays("smtp://" + addr.String() + "?max_conns=2")
	if err != nil {
		fmt.Println(err)
		return
	}
	sender, err := mailer.NewSender(relays, mailer.Options{HeloName: "mail.example.org"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sender.Close()

	err = sender.Send(ctx, &mailer.Message{
		From:    "Newsletter <news@example.org>",
		To:      "Ana <ana@example.net>",
		Subject: "Confirmez votre inscription",
		Text:    "Please confirm: http://127.0.0.1:8080/confirm/xyz",
		Headers: map[string]string{"List-Id": "<news.example.org>"},
	})
	switch {
	case err == nil:
		// Accepted by the relay (its 250 arrived before Send returned).
	case mailer.IsTemporary(err):
		fmt.Println("retry later:", err)
	default:
		fmt.Println("permanent, do not retry:", err)
	}

	m := catcher.Messages()[0]
	fmt.Println(m.To, m.Subject)
	fmt.Println(m.Header.Get("List-Id"))
	// Output:
	// [ana@example.net] Confirmez votre inscription
	// <news.example.org>
}
