package optin

import (
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences/address"
	"consentmail/preferences/httperr"
)

// PreferenceLinks queues the mail of a preference-centre link to whoever has an
// address, given by its blind index; *linkmail.Links is one.
type PreferenceLinks interface {
	QueuePreferencesLink(ctx context.Context, emailIndex []byte) error
}

// prefsLink serves POST /api/v1/preferences/link {"email": "..."}: always 202 for a
// well-formed address; a known one is mailed a fresh preference-centre link, at most
// once per preferences.LinkMailInterval. Neither the answer nor its timing tells
// whether the address is known: the request does the same work for every address
// (its blind index is queued), and the queue handler looks it up.
func (h *Handler) prefsLink(c *fiber.Ctx) error {
	if len(c.Body()) > MaxBody {
		return httperr.New(fiber.StatusRequestEntityTooLarge, "too_large", "body larger than 16 KiB")
	}
	var email string
	if strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationForm) {
		email = c.FormValue("email")
	} else {
		req, bad, err := decodeJSONSignup(c.Body())
		if err != nil {
			return httperr.New(fiber.StatusBadRequest, "bad_json", "the body must be a JSON object")
		}
		if len(bad) > 0 {
			return httperr.Invalid(bad)
		}
		email = req.Email
	}
	_, key, err := address.Normalise(strings.TrimSpace(email))
	if err != nil {
		return httperr.Invalid(map[string]string{"email": "must be an email address"})
	}
	if err := h.links.QueuePreferencesLink(c.UserContext(), h.store.EmailIndex(key)); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "accepted"})
}
