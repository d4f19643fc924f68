package optin

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"consentmail/preferences/clientip"
	"consentmail/preferences/httperr"
)

// BenchmarkShed measures one refused API signup through an app shaped as cmd's
// (client address resolved first): under overload most requests are refusals, and
// what each costs is CPU taken from the signups admitted.
//
//	go test ./optin -run '^$' -bench Shed -benchmem
func BenchmarkShed(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	h := NewHandler(nil, nil, nil, nil, nil, Config{MaxInFlight: 1, SignupRate: Rate{N: 1000, Per: time.Minute}},
		time.Now, log, prometheus.NewRegistry())
	app := fiber.New(fiber.Config{ErrorHandler: httperr.Handler(log), DisableStartupMessage: true, Immutable: true})
	app.Use(clientip.New([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}).Middleware())
	h.Routes(app)
	h.inflight <- struct{}{} // the one place is taken: every signup is refused
	handler := app.Handler()
	var fc fasthttp.RequestCtx
	body := []byte(`{"email":"someone@example.org","lists":["newsletter"],"consent":true}`)
	b.ReportAllocs()
	for b.Loop() {
		fc.Request.Reset()
		fc.Response.Reset()
		fc.Request.Header.SetMethod(fasthttp.MethodPost)
		fc.Request.SetRequestURI("/api/v1/signups")
		fc.Request.Header.SetContentType("application/json")
		fc.Request.Header.Set("X-Forwarded-For", "198.51.100.7")
		fc.Request.SetBody(body)
		handler(&fc)
		if fc.Response.StatusCode() != fasthttp.StatusServiceUnavailable {
			b.Fatalf("refusal: %d %s", fc.Response.StatusCode(), fc.Response.Body())
		}
	}
}
