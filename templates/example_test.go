package templates_test

import (
	"fmt"
	"time"

	"consentmail/templates"
)

func ExampleRenderer_Email() {
	r, err := templates.New(templates.Site{Company: "Acme Shop"})
	if err != nil {
		panic(err)
	}
	lang := templates.Negotiate("", "fr-FR,fr;q=0.9,en;q=0.5")
	mail, err := r.Email(lang, "optin", struct {
		Name       string
		Lists      []struct{ Name, Purpose string }
		ConfirmURL string
		Expires    time.Time
	}{Name: "Ana", ConfirmURL: "https://news.example.org/confirm/TOKEN", Expires: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)})
	if err != nil {
		panic(err)
	}
	fmt.Println(lang, "|", mail.Subject)
	// Output: fr | Merci de confirmer votre abonnement
}
