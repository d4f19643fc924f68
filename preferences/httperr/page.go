package httperr

import (
	"bytes"
	"log/slog"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/templates"
)

// PageHandler is Handler for an app that also serves people's browsers: an error on a
// browser route (ForBrowser) is answered with an HTML page in the subscriber pages'
// style and the person's language (Accept-Language), with the error's status; API
// routes keep the JSON error shape. The page says what happened in plain words and
// never shows the error's code or internal text.
func PageHandler(log *slog.Logger, pages *templates.Renderer) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		e := From(c, err, log)
		if !ForBrowser(c.Path()) {
			return Write(c, e)
		}
		title, body := pageKeys(e.Status)
		lang := templates.Negotiate("", c.Get(fiber.HeaderAcceptLanguage))
		var buf bytes.Buffer
		if err := pages.Page(&buf, lang, "message", title, templates.Message{Paragraphs: []string{body}}); err != nil {
			log.Error("render error page", "status", e.Status, "err", err)
			return Write(c, e)
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		return c.Status(e.Status).Send(buf.Bytes())
	}
}

// apiPrefixes are the paths machines call: their errors are JSON everywhere.
var apiPrefixes = []string{"/api/", "/webhooks/", "/t/"}

// apiPaths are single machine paths.
var apiPaths = []string{"/api", "/webhooks", "/t", "/metrics", "/healthz", "/readyz"}

// ForBrowser reports whether path is one people open in a browser (the subscriber
// pages, the hosted form, the admin app, anything unknown) rather than one machines
// call (the API, relay webhooks, tracking links, health and metrics).
func ForBrowser(path string) bool {
	p := strings.ToLower(path)
	if len(p) > 1 {
		p = strings.TrimRight(p, "/")
	}
	for _, a := range apiPaths {
		if p == a {
			return false
		}
	}
	for _, a := range apiPrefixes {
		if strings.HasPrefix(p, a) {
			return false
		}
	}
	return true
}

// pageKeys are the catalog keys of the title and text of the page of an error status.
func pageKeys(status int) (title, body string) {
	switch {
	case status == fiber.StatusNotFound:
		return "notfound.title", "notfound.body"
	case status == fiber.StatusMethodNotAllowed:
		return "methodnotallowed.title", "methodnotallowed.body"
	case status == fiber.StatusTooManyRequests:
		return "ratelimited.title", "ratelimited.body"
	case status == fiber.StatusRequestEntityTooLarge:
		return "toolarge.title", "toolarge.body"
	case status >= 500:
		return "error.title", "error.body"
	}
	return "badrequest.title", "badrequest.body"
}
