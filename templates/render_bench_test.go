package templates_test

import (
	"testing"
	"time"

	"consentmail/templates"
)

type benchList struct{ Name, Purpose string }

func BenchmarkOptinEmail(b *testing.B) {
	r, err := templates.New(templates.Site{Company: "Acme", PrivacyURL: "https://acme.example/privacy"})
	if err != nil {
		b.Fatal(err)
	}
	data := struct {
		Name       string
		Lists      []benchList
		ConfirmURL string
		Expires    time.Time
	}{"Ana", []benchList{{"Weekly", "News"}}, "http://127.0.0.1:8080/confirm/abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789.abcdefghijklmnopqrstuvwxyz", time.Now()}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := r.Email("fr", "optin", data); err != nil {
			b.Fatal(err)
		}
	}
}
