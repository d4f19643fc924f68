package adminapi

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/address"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/httperr"
)

// mayUnmask reports whether the caller asked for full addresses and may have them;
// asking without the role is refused.
func mayUnmask(c *fiber.Ctx) (bool, error) {
	if c.Query("unmask") != "true" {
		return false, nil
	}
	if r := apiauth.Caller(c).Role; !preferences.SeesPersonalData(r) {
		return false, httperr.New(fiber.StatusForbidden, "forbidden", "the "+r+" role may not unmask addresses")
	}
	return true, nil
}

// present masks or unmasks subs for the caller, logging every unmasked read.
func (h *API) present(c *fiber.Ctx, subs []*preferences.Subscriber, via string) error {
	unmask, err := mayUnmask(c)
	if err != nil {
		return err
	}
	if !unmask {
		for _, s := range subs {
			s.Mask(apiauth.Caller(c).Role)
		}
		return nil
	}
	var ids []string
	for _, s := range subs {
		if s.Email != "" {
			ids = append(ids, s.ID)
		}
	}
	return h.store.RecordUnmasked(c.UserContext(), ids, apiauth.Actor(c), via)
}

func (h *API) subscribers(c *fiber.Ctx) error {
	limit, err := httperr.Limit(c)
	if err != nil {
		return err
	}
	q := preferences.SubscriberQuery{List: c.Query("list"), Status: c.Query("status"), After: c.Query("cursor"), Limit: limit}
	if q.List != "" && !preferences.ValidListID(q.List) {
		return httperr.Invalid(map[string]string{"list": "is not a list id"})
	}
	switch q.Status {
	case "", preferences.StatusActive, preferences.StatusRestricted, preferences.StatusErased, preferences.StatusBlocked,
		preferences.SubPending, preferences.SubConfirmed, preferences.SubUnsubscribed:
	default:
		return httperr.Invalid(map[string]string{"status": "must be a subscriber or subscription status"})
	}
	subs, next, err := h.store.Subscribers(c.UserContext(), q)
	if err != nil {
		return err
	}
	if err := h.present(c, subs, "list"); err != nil {
		return err
	}
	return httperr.Page(c, subs, next)
}

func (h *API) subscriber(c *fiber.Ctx) error {
	sub, err := h.store.Subscriber(c.UserContext(), c.Params("id"))
	if errors.Is(err, preferences.ErrNotFound) {
		return httperr.NotFound("subscriber")
	}
	if err != nil {
		return err
	}
	if err := h.present(c, []*preferences.Subscriber{sub}, "read"); err != nil {
		return err
	}
	return c.JSON(sub)
}

// lookup finds a subscriber by address (DPO and admin): the caller knows the address,
// and the read is logged as unmasked.
func (h *API) lookup(c *fiber.Ctx) error {
	typed := strings.TrimSpace(c.Query("email"))
	_, key, err := address.Normalise(typed)
	switch {
	case typed == "":
		return httperr.Invalid(map[string]string{"email": "is required"})
	case err != nil:
		return httperr.Invalid(map[string]string{"email": "must be an email address"})
	}
	id, ok := h.store.LookupEmail(c.UserContext(), key)
	if !ok {
		return httperr.NotFound("subscriber")
	}
	sub, err := h.store.Subscriber(c.UserContext(), id)
	if err != nil {
		return err
	}
	if err := h.store.RecordUnmasked(c.UserContext(), []string{id}, apiauth.Actor(c), "lookup"); err != nil {
		return err
	}
	return c.JSON(sub)
}

func (h *API) exportSubscriber(c *fiber.Ctx) error {
	doc, err := h.store.ExportSubscriber(c.UserContext(), c.Params("id"), apiauth.Actor(c), h.history)
	if errors.Is(err, preferences.ErrNotFound) {
		return httperr.NotFound("subscriber")
	}
	if err != nil {
		return err
	}
	return SendExport(c, doc)
}

// SendExport answers a subscriber's export as a download: JSON, or with ?format=csv
// a zip of CSV files; the API and the admin pages send it the same way.
func SendExport(c *fiber.Ctx, doc *preferences.Export) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	if c.Query("format") == "csv" {
		var buf bytes.Buffer
		if err := doc.WriteZip(&buf); err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, "application/zip")
		c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s.zip"`, doc.Subscriber.ID))
		return c.Send(buf.Bytes())
	}
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s.json"`, doc.Subscriber.ID))
	return c.JSON(doc)
}

func (h *API) restrict(on bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in := preferences.StatusChange{Subscriber: c.Params("id"), Actor: apiauth.Actor(c)}
		var err error
		if on {
			err = h.store.Restrict(c.UserContext(), in)
		} else {
			err = h.store.Unrestrict(c.UserContext(), in)
		}
		switch {
		case errors.Is(err, preferences.ErrNotFound):
			return httperr.NotFound("subscriber")
		case errors.Is(err, preferences.ErrStatus):
			return httperr.New(fiber.StatusConflict, "conflict", err.Error())
		case err != nil:
			return err
		}
		sub, err := h.store.Subscriber(c.UserContext(), in.Subscriber)
		if err != nil {
			return err
		}
		sub.Mask(apiauth.Caller(c).Role)
		return c.JSON(sub)
	}
}

func (h *API) erase(c *fiber.Ctx) error {
	rc, err := h.eraser.Erase(c.UserContext(), c.Params("id"), apiauth.Actor(c))
	switch {
	case errors.Is(err, preferences.ErrNotFound):
		return httperr.NotFound("subscriber")
	case errors.Is(err, preferences.ErrErased):
		return httperr.New(fiber.StatusConflict, "conflict", "this subscriber was erased before")
	case errors.Is(err, preferences.ErrStatus):
		return httperr.New(fiber.StatusConflict, "conflict", "the subscriber is restricted: lift the restriction before erasing")
	case errors.Is(err, preferences.ErrErasureIncomplete):
		// Committed: the data is unreadable, the steps left are retried in the
		// background, and asking again finishes them with the same receipt.
		return httperr.New(fiber.StatusServiceUnavailable, "erasure_incomplete",
			"the erasure is recorded and the personal data unreadable, but a step after it failed (the queue or Redis); it is retried, and asking again finishes it")
	case err != nil:
		return err
	}
	return c.JSON(rc)
}
