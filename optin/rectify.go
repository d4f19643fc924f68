package optin

import (
	"encoding/json"
	"errors"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/text/language"

	"consentmail/preferences"
	"consentmail/preferences/address"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/httperr"
)

// rectify serves PATCH /api/v1/subscribers/{id} (GDPR art. 16): name, locale,
// attributes and email, validated as a signup's. A new email must be confirmed by
// double opt-in before campaigns use it.
func (h *AdminAPI) rectify(c *fiber.Ctx) error {
	var in struct {
		Name       *string         `json:"name"`
		Locale     *string         `json:"locale"`
		Attributes json.RawMessage `json:"attributes"`
		Email      *string         `json:"email"`
	}
	if err := httperr.BindJSON(c, &in); err != nil {
		return err
	}
	r := preferences.Rectification{Subscriber: c.Params("id"), Name: in.Name, Actor: apiauth.Actor(c)}
	bad := map[string]string{}
	if in.Name != nil {
		if msg := checkLine(*in.Name, 200); msg != "" {
			bad["name"] = msg
		}
	}
	if in.Locale != nil {
		tag, err := language.Parse(*in.Locale)
		if err != nil || len(*in.Locale) > 35 {
			bad["locale"] = "is not a language tag such as en or fr"
		} else {
			loc := tag.String()
			r.Locale = &loc
		}
	}
	if len(in.Attributes) > 0 && string(in.Attributes) != "null" {
		if msg := checkAttributes(in.Attributes); msg != "" {
			bad["attributes"] = msg
		}
		r.Attributes = in.Attributes
	}
	if in.Email != nil {
		addr, key, err := address.Normalise(*in.Email)
		if err != nil {
			bad["email"] = "must be an email address"
		}
		r.Email, r.EmailKey = addr, key
	}
	if len(bad) > 0 {
		return httperr.Invalid(bad)
	}
	fields, err := h.store.Rectify(c.UserContext(), r, OptinEnqueuer(h.q))
	switch {
	case errors.Is(err, preferences.ErrNotFound):
		return httperr.NotFound("subscriber")
	case errors.Is(err, preferences.ErrStatus):
		return httperr.New(fiber.StatusConflict, "conflict", "a restricted or erased subscriber cannot be changed")
	case errors.Is(err, preferences.ErrEmailTaken):
		return httperr.New(fiber.StatusConflict, "conflict", "another subscriber has this address")
	case err != nil:
		return err
	}
	sub, err := h.store.Subscriber(c.UserContext(), r.Subscriber)
	if err != nil {
		return err
	}
	sub.Email = address.Mask(sub.Email)
	if fields == nil {
		fields = []string{}
	}
	return c.JSON(fiber.Map{"subscriber": sub, "rectified": fields})
}
