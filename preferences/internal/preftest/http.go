package preftest

import (
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/clientip"
	"consentmail/preferences/httperr"
	"consentmail/preferences/linktoken"
	"consentmail/templates"
)

// NewApp returns a Fiber app with the contract's error shape and cmd's client
// resolver, trusting the proxy app.Test connects from (0.0.0.0), so tests choose the
// client's IP with X-Forwarded-For.
func NewApp(tb testing.TB) *fiber.App {
	tb.Helper()
	app := fiber.New(fiber.Config{ErrorHandler: httperr.Handler(slog.New(slog.NewTextHandler(tb.Output(), nil))),
		Immutable: true}) // as in cmd
	app.Use(clientip.New([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}).Middleware())
	return app
}

// Do sends req to app and returns the response with its body read whole.
func Do(tb testing.TB, app *fiber.App, req *http.Request) (*http.Response, []byte) {
	tb.Helper()
	res, err := app.Test(req, -1)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return res, b
}

// Templates returns the embedded pages and emails for the company Acme.
func Templates(tb testing.TB) *templates.Renderer {
	tb.Helper()
	r, err := templates.New(templates.Site{Company: "Acme"})
	if err != nil {
		tb.Fatalf("templates.New: %v", err)
	}
	return r
}

// UnsubscribeSigner returns the signer of the links in mail, keyed from Secret as cmd
// keys it.
func UnsubscribeSigner() *linktoken.Signer {
	return linktoken.NewSigner(preferences.DeriveKey(Secret, "unsubscribe-links"))
}
