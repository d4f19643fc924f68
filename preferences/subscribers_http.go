package preferences

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	"go.etcd.io/bbolt"

	"consentmail/preferences/address"
	"consentmail/preferences/httperr"
)

// SubscriberQuery filters Subscribers. Status is a subscriber status (active,
// restricted, erased, blocked) or, with or without List, a subscription status
// (pending, confirmed, unsubscribed). After is the cursor: a subscriber id.
type SubscriberQuery struct {
	List   string
	Status string
	After  string
	Limit  int
}

func isSubscriptionStatus(s string) bool {
	return s == SubPending || s == SubConfirmed || s == SubUnsubscribed
}

// Subscribers returns a page of opened subscribers in id (creation) order and the
// cursor of the next page. It reads one page of keys at a time, so it is as fast on
// the millionth subscriber as on the first.
func (s *Store) Subscribers(ctx context.Context, q SubscriberQuery) ([]*Subscriber, string, error) {
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 100
	}
	var out []*Subscriber
	next := ""
	err := s.db.View(func(tx *bbolt.Tx) error {
		out = out[:0]
		subs := bucket(tx, bucketSubscribers)
		keep := func(id []byte) (bool, error) {
			var rec subRecord
			if err := getJSON(subs, id, &rec); err != nil {
				return false, err
			}
			switch {
			case q.Status == "":
			case isSubscriptionStatus(q.Status):
				ok := false
				for _, x := range rec.Subs {
					ok = ok || x.Status == q.Status && (q.List == "" || x.List == q.List)
				}
				if !ok {
					return false, nil
				}
			case rec.Status != q.Status:
				return false, nil
			}
			sub, err := s.open(tx, &rec)
			if err != nil {
				return false, err
			}
			out = append(out, sub)
			return true, nil
		}
		var c *bbolt.Cursor
		var prefix []byte
		if q.List != "" {
			c, prefix = bucket(tx, bucketMembers).Cursor(), []byte(q.List+"\x00")
		} else {
			c = subs.Cursor()
		}
		k, _ := c.Seek(append(append([]byte{}, prefix...), q.After...))
		if q.After != "" && bytes.Equal(k, append(append([]byte{}, prefix...), q.After...)) {
			k, _ = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(out) == q.Limit {
				next = out[len(out)-1].ID
				return nil
			}
			if _, err := keep(k[len(prefix):]); err != nil {
				return err
			}
		}
		return nil
	})
	return out, next, err
}

// RecordUnmasked writes one unmasked event per subscriber whose address an admin
// or DPO read in full; actor names the API key.
func (s *Store) RecordUnmasked(ctx context.Context, subscribers []string, actor, reason string) error {
	if len(subscribers) == 0 {
		return nil
	}
	return s.commit.update(ctx, func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		for _, id := range subscribers {
			if _, err := s.appendEvent(tx, now, nil, eventInput{Type: EventUnmasked, Subscriber: id, Actor: actor,
				Details: map[string]string{"via": reason}}); err != nil {
				return err
			}
		}
		return nil
	})
}

// subscriberRoutes mounts the data-subject endpoints (contract §4.2).
func (h *AdminAPI) subscriberRoutes(r fiber.Router) {
	anyRole := h.auth.Require(RoleMarketer, RoleDPO, RoleViewer)
	dpo := h.auth.Require(RoleDPO)

	r.Get("/api/v1/subscribers", anyRole, h.subscribers)
	r.Get("/api/v1/subscribers/lookup", dpo, h.lookup)
	r.Get("/api/v1/subscribers/:id", anyRole, h.subscriber)
	r.Get("/api/v1/subscribers/:id/export", dpo, h.exportSubscriber)
	r.Post("/api/v1/subscribers/:id/restrict", dpo, h.restrict(true))
	r.Post("/api/v1/subscribers/:id/unrestrict", dpo, h.restrict(false))
	r.Delete("/api/v1/subscribers/:id", dpo, h.erase)
}

// actor names the caller in the ledger: the API key's name and id.
func actor(c *fiber.Ctx) string {
	p := Caller(c)
	if p.Name == "" {
		return "apikey:" + p.KeyID
	}
	return "apikey:" + p.KeyID + " (" + p.Name + ")"
}

// mayUnmask reports whether the caller asked for full addresses and may have them;
// asking without the role is refused.
func mayUnmask(c *fiber.Ctx) (bool, error) {
	if c.Query("unmask") != "true" {
		return false, nil
	}
	if r := Caller(c).Role; r != RoleAdmin && r != RoleDPO {
		return false, httperr.New(fiber.StatusForbidden, "forbidden", "the "+r+" role may not unmask addresses")
	}
	return true, nil
}

// present masks or unmasks subs for the caller, logging every unmasked read.
func (h *AdminAPI) present(c *fiber.Ctx, subs []*Subscriber, via string) error {
	unmask, err := mayUnmask(c)
	if err != nil {
		return err
	}
	if !unmask {
		for _, s := range subs {
			if s.Email != "" {
				s.Email = address.Mask(s.Email)
			}
		}
		return nil
	}
	var ids []string
	for _, s := range subs {
		if s.Email != "" {
			ids = append(ids, s.ID)
		}
	}
	return h.store.RecordUnmasked(c.UserContext(), ids, actor(c), via)
}

func (h *AdminAPI) subscribers(c *fiber.Ctx) error {
	limit, err := httperr.Limit(c)
	if err != nil {
		return err
	}
	q := SubscriberQuery{List: c.Query("list"), Status: c.Query("status"), After: c.Query("cursor"), Limit: limit}
	if q.List != "" && !ValidListID(q.List) {
		return httperr.Invalid(map[string]string{"list": "is not a list id"})
	}
	switch q.Status {
	case "", StatusActive, StatusRestricted, StatusErased, StatusBlocked, SubPending, SubConfirmed, SubUnsubscribed:
	default:
		return httperr.Invalid(map[string]string{"status": "must be a subscriber or subscription status"})
	}
	subs, next, err := h.store.Subscribers(c.UserContext(), q)
	if err != nil {
		return err
	}
	if subs == nil {
		subs = []*Subscriber{}
	}
	if err := h.present(c, subs, "list"); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": subs, "next_cursor": next})
}

func (h *AdminAPI) subscriber(c *fiber.Ctx) error {
	sub, err := h.store.Subscriber(c.UserContext(), c.Params("id"))
	if errors.Is(err, ErrNotFound) {
		return httperr.NotFound("subscriber")
	}
	if err != nil {
		return err
	}
	if err := h.present(c, []*Subscriber{sub}, "read"); err != nil {
		return err
	}
	return c.JSON(sub)
}

// lookup finds a subscriber by address (DPO and admin): the caller knows the address,
// and the read is logged as unmasked. The address is normalised as at signup, so it
// is found however it is typed (case, IDN or punycode domain).
func (h *AdminAPI) lookup(c *fiber.Ctx) error {
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
	if err := h.store.RecordUnmasked(c.UserContext(), []string{id}, actor(c), "lookup"); err != nil {
		return err
	}
	return c.JSON(sub)
}

func (h *AdminAPI) exportSubscriber(c *fiber.Ctx) error {
	doc, err := h.store.ExportSubscriber(c.UserContext(), c.Params("id"), actor(c), nil)
	if errors.Is(err, ErrNotFound) {
		return httperr.NotFound("subscriber")
	}
	if err != nil {
		return err
	}
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

func (h *AdminAPI) restrict(on bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in := StatusChange{Subscriber: c.Params("id"), Actor: actor(c)}
		var err error
		if on {
			err = h.store.Restrict(c.UserContext(), in)
		} else {
			err = h.store.Unrestrict(c.UserContext(), in)
		}
		switch {
		case errors.Is(err, ErrNotFound):
			return httperr.NotFound("subscriber")
		case errors.Is(err, ErrStatus):
			return httperr.New(fiber.StatusConflict, "conflict", err.Error())
		case err != nil:
			return err
		}
		sub, err := h.store.Subscriber(c.UserContext(), in.Subscriber)
		if err != nil {
			return err
		}
		sub.Email = address.Mask(sub.Email)
		return c.JSON(sub)
	}
}

func (h *AdminAPI) erase(c *fiber.Ctx) error {
	rc, err := NewEraser(h.store, nil, nil).Erase(c.UserContext(), c.Params("id"), actor(c))
	switch {
	case errors.Is(err, ErrNotFound):
		return httperr.NotFound("subscriber")
	case errors.Is(err, ErrErased):
		return httperr.New(fiber.StatusConflict, "conflict", "this subscriber was erased before")
	case err != nil:
		return err
	}
	return c.JSON(rc)
}
