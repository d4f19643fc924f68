package webhooks_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/mailer/webhooks"
)

// A Mailgun "failed" event, signed with the webhook signing key (HMAC-SHA256 of
// timestamp and token), becomes a hard bounce handed to the Sink for the message its
// user variable names.
func ExampleHandler_Routes() {
	key := []byte("key-0123456789abcdef0123456789abcdef")
	s := &sink{}
	app := fiber.New(fiber.Config{Immutable: true})
	webhooks.New(webhooks.Config{MailgunKey: key}, s, nil, nil, time.Now, slog.New(slog.DiscardHandler), nil).Routes(app)

	ts, token := strconv.FormatInt(time.Now().Unix(), 10), "5d0a2b8c3e1f4a6b9c7d8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a"
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(ts + token))
	body := fmt.Sprintf(`{"signature":{"timestamp":%q,"token":%q,"signature":%q},
		"event-data":{"event":"failed","severity":"permanent","recipient":"ann@example.net",
		"user-variables":{%q:%q}}}`, ts, token, hex.EncodeToString(mac.Sum(nil)), webhooks.RefKey, ref)
	res, _ := app.Test(httptest.NewRequest("POST", "/webhooks/mailgun", bytes.NewReader([]byte(body))))
	fmt.Println(res.StatusCode, s.take())
	// Output:
	// 200 mailgun hard ann@example.net
}
