package apiauth_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/httperr"
)

// Require admits a key of one of the roles (admin always): 401 without a valid key,
// 403 for a role too low.
func ExampleGuard_Require() {
	dir, _ := os.MkdirTemp("", "apiauth-example-")
	defer os.RemoveAll(dir)
	db, _ := bbolt.Open(filepath.Join(dir, "consentmail.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	defer db.Close()
	store, _ := preferences.New(db, []byte("an example root secret of 32 bytes or more"), time.Now)
	defer store.Close()
	_, viewer, _ := store.CreateAPIKey(context.Background(), preferences.RoleViewer, "dashboard")
	_, marketer, _ := store.CreateAPIKey(context.Background(), preferences.RoleMarketer, "newsletter team")

	guard := apiauth.New(preferences.NewAuthenticator(store), time.Now)
	app := fiber.New(fiber.Config{ErrorHandler: httperr.Handler(slog.New(slog.DiscardHandler))})
	app.Post("/api/v1/lists", guard.Require(preferences.RoleMarketer), func(c *fiber.Ctx) error {
		return c.SendString(apiauth.Actor(c))
	})
	for _, key := range []string{"", "cmk_wrong", viewer, marketer} {
		req := httptest.NewRequest("POST", "/api/v1/lists", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, _ := app.Test(req)
		fmt.Println(res.StatusCode)
	}
	// Output:
	// 401
	// 401
	// 403
	// 200
}
