package templates_test

import (
	"fmt"
	"strings"

	"consentmail/templates"
)

func ExampleParseCampaign() {
	// Parsed and checked once, when the marketer saves or previews the template.
	c, err := templates.ParseCampaign(
		"{{.Campaign.Name}} for {{.Subscriber.Name | default \"you\"}}",
		`<html><head><style>p { color: #333 }</style></head><body>
<p>Hello {{.Subscriber.Name | default "there"}},</p>
<p>Our <a href="https://shop.example/sale">spring sale</a> starts today{{with .Subscriber.Attributes.city}} in {{.}}{{end}}.</p>
</body></html>`,
		"") // no text part: it is derived from the HTML
	if err != nil {
		panic(err) // a *templates.TemplateError naming the part and line
	}

	// Rendered once per recipient.
	msg, err := c.Render(templates.CampaignData{
		Subscriber:     templates.SubscriberData{Name: "Ana", Locale: "fr", Attributes: map[string]any{"city": "Lyon"}},
		Campaign:       templates.CampaignInfo{ID: "c1", Name: "Spring news"},
		UnsubscribeURL: "https://news.example/u/TOKEN",
		PreferencesURL: "https://news.example/p/TOKEN",
	}, templates.Footer{Company: "Acme Shop", PostalAddress: "1 rue de la Paix, 75002 Paris"})
	if err != nil {
		panic(err)
	}
	fmt.Println(msg.Subject)
	fmt.Println(strings.Contains(msg.HTML, `<p style="color:#333">Hello Ana,</p>`))
	fmt.Print(strings.ReplaceAll(msg.Text, "-- \n", "--\n")) // the signature line is "-- " with a space
	// Output:
	// Spring news for Ana
	// true
	// Hello Ana,
	//
	// Our spring sale (https://shop.example/sale) starts today in Lyon.
	//
	// --
	// Acme Shop vous envoie cet e-mail parce que vous vous êtes abonné.
	// Se désabonner : https://news.example/u/TOKEN
	// Gérer mes préférences : https://news.example/p/TOKEN
	// Acme Shop
	// 1 rue de la Paix, 75002 Paris
}
