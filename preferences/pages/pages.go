// Package pages serves the subscriber-facing pages of the consent book (contract §2):
// the unsubscribe page and RFC 8058 one-click unsubscribe (/u/{token}), and the
// preference centre (/p/{token}) with its data link, export and erasure.
//
// Every page works without JavaScript and cookies, answers in the subscriber's
// language, never reveals whether an address is known, and is sent with
// Cache-Control: no-store. A GET changes nothing; every state-changing form carries a
// signed, expiring form token. A preference link (in every mail, long-lived, perhaps
// forwarded) manages subscriptions; only a data link (emailed on request, one hour)
// exports or erases.
package pages

import (
	"bytes"
	"context"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/templates"
)

// Eraser erases a subscriber; *preferences.Store is one.
type Eraser interface {
	Erase(ctx context.Context, subscriber, actor string) (preferences.ErasureReceipt, error)
}

// message is the data of the one-message page.
type message = templates.Message

// render writes page name in lang, never cached.
func render(c *fiber.Ctx, tpl *templates.Renderer, status int, lang, name, title string, data any) error {
	var buf bytes.Buffer
	if err := tpl.Page(&buf, lang, name, title, data); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).Send(buf.Bytes())
}
