package httperr_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences/httperr"
)

// Handlers return *httperr.Error values; the error handler writes the contract's
// error shape with their status.
func ExampleHandler() {
	app := fiber.New(fiber.Config{ErrorHandler: httperr.Handler(slog.New(slog.DiscardHandler))})
	app.Post("/things", func(c *fiber.Ctx) error {
		return httperr.Invalid(map[string]string{"email": "must be an email address"})
	})
	res, _ := app.Test(httptest.NewRequest("POST", "/things", nil))
	body, _ := io.ReadAll(res.Body)
	fmt.Println(res.StatusCode, string(body))
	// Output:
	// 422 {"error":{"code":"validation_failed","message":"some fields are invalid","fields":{"email":"must be an email address"}}}
}
