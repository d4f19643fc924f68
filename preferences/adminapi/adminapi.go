// Package adminapi serves the consent book's admin endpoints (contract §4): lists,
// API keys, the ledger, subscribers and their rights (read, lookup, export, restrict,
// erase) and the register of processing activities.
//
// Every route needs an API key (apiauth). Addresses are masked unless an admin or a
// DPO asks for them unmasked, and every unmasked read is written to the ledger;
// marketers and viewers never see names or attribute values (Subscriber.Mask). Errors
// have the contract's shape (httperr); statuses are chosen here, never in the domain.
package adminapi

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/httperr"
)

// Eraser erases a subscriber; *preferences.Store is one.
type Eraser interface {
	Erase(ctx context.Context, subscriber, actor string) (preferences.ErasureReceipt, error)
}

// API serves the admin endpoints the consent book owns.
type API struct {
	store  *preferences.Store
	guard  *apiauth.Guard
	eraser Eraser
	// history is the campaigns part of an export; given to every export.
	history   preferences.CampaignHistory
	site      preferences.RegisterSite
	checkFrom FromCheck
}

// FromCheck says whether mail may be sent from an address: nil, or an error whose
// text tells the marketer why not (the sender's DKIM keys cover no domain of it, so
// DMARC alignment would fail). A nil FromCheck accepts every address.
type FromCheck func(from string) error

// New returns the admin API over the store; site is what the register says about the
// company; checkFrom (nil: none) refuses a list from that mail cannot be sent from.
func New(s *preferences.Store, guard *apiauth.Guard, eraser Eraser, history preferences.CampaignHistory,
	site preferences.RegisterSite, checkFrom FromCheck) *API {
	return &API{store: s, guard: guard, eraser: eraser, history: history, site: site, checkFrom: checkFrom}
}

// fromRefused returns why a list's from, just sent, is refused by the from check:
// "" when it is accepted, empty (the default from then applies) or not checked.
func (h *API) fromRefused(from *string) string {
	if h.checkFrom == nil || from == nil || strings.TrimSpace(*from) == "" {
		return ""
	}
	if err := h.checkFrom(strings.TrimSpace(*from)); err != nil {
		return err.Error()
	}
	return ""
}

// Routes mounts the endpoints on r (the application root).
func (h *API) Routes(r fiber.Router) {
	anyRole := h.guard.Require(preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleViewer)
	editors := h.guard.Require(preferences.RoleMarketer)
	dpo := h.guard.Require(preferences.RoleDPO)
	admin := h.guard.Require()

	r.Post("/api/v1/lists", editors, h.createList)
	r.Get("/api/v1/lists", anyRole, h.lists)
	r.Get("/api/v1/lists/:id", anyRole, h.list)
	r.Patch("/api/v1/lists/:id", editors, h.updateList)
	r.Delete("/api/v1/lists/:id", editors, h.deleteList)
	r.Get("/api/v1/lists/:id/consent-texts", anyRole, h.consentTexts)
	r.Get("/api/v1/consent-texts/:version", anyRole, h.consentText)

	r.Post("/api/v1/apikeys", admin, h.createKey)
	r.Get("/api/v1/apikeys", admin, h.keys)
	r.Delete("/api/v1/apikeys/:id", admin, h.deleteKey)

	r.Get("/api/v1/ledger", dpo, h.ledger)
	r.Get("/api/v1/ledger/verify", dpo, h.verify)
	r.Get("/api/v1/ledger/head", dpo, h.head)
	r.Get("/api/v1/backup", admin, h.backup)

	r.Get("/api/v1/subscribers", anyRole, h.subscribers)
	r.Get("/api/v1/subscribers/lookup", dpo, h.lookup)
	r.Get("/api/v1/subscribers/:id", anyRole, h.subscriber)
	r.Get("/api/v1/subscribers/:id/export", dpo, h.exportSubscriber)
	r.Post("/api/v1/subscribers/:id/restrict", dpo, h.restrict(true))
	r.Post("/api/v1/subscribers/:id/unrestrict", dpo, h.restrict(false))
	r.Delete("/api/v1/subscribers/:id", dpo, h.erase)

	r.Get("/api/v1/register", dpo, h.register)
}

// listInput is the JSON of a list; pointers tell PATCH which fields were sent.
type listInput struct {
	ID            *string `json:"id"`
	Name          *string `json:"name"`
	Purpose       *string `json:"purpose"`
	ConsentText   *string `json:"consent_text"`
	PrivacyURL    *string `json:"privacy_url"`
	Public        *bool   `json:"public"`
	RetentionDays *int    `json:"retention_days"`
	From          *string `json:"from"`
	// Translations, when sent, replace the list's translations as a whole.
	Translations *map[string]preferences.ListText `json:"translations"`
}

func (in *listInput) apply(l *preferences.List) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = strings.TrimSpace(*src)
		}
	}
	set(&l.Name, in.Name)
	set(&l.Purpose, in.Purpose)
	set(&l.ConsentText, in.ConsentText)
	set(&l.PrivacyURL, in.PrivacyURL)
	set(&l.From, in.From)
	if in.Public != nil {
		l.Public = *in.Public
	}
	if in.RetentionDays != nil {
		l.RetentionDays = *in.RetentionDays
	}
	if in.Translations != nil {
		l.Translations = map[string]preferences.ListText{}
		for loc, t := range *in.Translations {
			l.Translations[loc] = preferences.ListText{Name: strings.TrimSpace(t.Name),
				Purpose: strings.TrimSpace(t.Purpose), ConsentText: strings.TrimSpace(t.ConsentText)}
		}
	}
}

// validateList returns the contract's field errors for a list about to be saved.
// validateList applies the consent book's rule for a list (preferences.ValidateList)
// and says each problem in the API's words.
func validateList(l *preferences.List) map[string]string {
	problems := preferences.ValidateList(l)
	if problems == nil {
		return nil
	}
	bad := map[string]string{}
	for field, problem := range problems {
		base := field[strings.LastIndexByte(field, '.')+1:]
		switch problem {
		case preferences.ListBadID:
			bad[field] = "must match [a-z0-9-]{1,64}"
		case preferences.ListRequired:
			bad[field] = "is required"
		case preferences.ListTooLong:
			bad[field] = "is longer than " + strconv.Itoa(preferences.ListFieldMax[base]) + " bytes"
		case preferences.ListNUL:
			bad[field] = "contains a NUL byte"
		case preferences.ListOneLine:
			bad[field] = "must be one line"
		case preferences.ListBadURL:
			bad[field] = "must be an http(s) URL"
		case preferences.ListBadRetention:
			bad[field] = "must be between 1 and 36500"
		case preferences.ListBadLocale:
			bad[field] = "is not a language of the pages: " + strings.Join(preferences.Locales, ", ")
		default:
			bad[field] = problem
		}
	}
	return bad
}

func (h *API) createList(c *fiber.Ctx) error {
	var in listInput
	if err := httperr.BindJSON(c, &in); err != nil {
		return err
	}
	l := preferences.List{RetentionDays: preferences.DefaultRetentionDays}
	if in.ID != nil {
		l.ID = *in.ID
	}
	in.apply(&l)
	if bad := validateList(&l); bad != nil {
		return httperr.Invalid(bad)
	}
	if why := h.fromRefused(in.From); why != "" {
		return httperr.Invalid(map[string]string{"from": why})
	}
	l, err := h.store.CreateList(c.UserContext(), l)
	if errors.Is(err, preferences.ErrConflict) {
		return httperr.New(fiber.StatusConflict, "conflict", "a list with this id exists")
	}
	if err != nil {
		return err
	}
	out, err := h.withCounts(c.UserContext(), l)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out[0])
}

func (h *API) lists(c *fiber.Ctx) error {
	limit, err := httperr.Limit(c)
	if err != nil {
		return err
	}
	items, next, err := h.store.Lists(c.UserContext(), c.Query("cursor"), limit)
	if err != nil {
		return err
	}
	out, err := h.withCounts(c.UserContext(), items...)
	if err != nil {
		return err
	}
	return httperr.Page(c, out, next)
}

func (h *API) list(c *fiber.Ctx) error {
	l, err := h.store.List(c.UserContext(), c.Params("id"))
	if errors.Is(err, preferences.ErrNotFound) {
		return httperr.NotFound("list")
	}
	if err != nil {
		return err
	}
	out, err := h.withCounts(c.UserContext(), l)
	if err != nil {
		return err
	}
	return c.JSON(out[0])
}

func (h *API) updateList(c *fiber.Ctx) error {
	var in listInput
	if err := httperr.BindJSON(c, &in); err != nil {
		return err
	}
	if in.ID != nil && *in.ID != c.Params("id") {
		return httperr.Invalid(map[string]string{"id": "cannot be changed"})
	}
	if why := h.fromRefused(in.From); why != "" {
		return httperr.Invalid(map[string]string{"from": why})
	}
	l, err := h.store.UpdateList(c.UserContext(), c.Params("id"), func(l *preferences.List) error {
		in.apply(l)
		if bad := validateList(l); bad != nil {
			return httperr.Invalid(bad)
		}
		return nil
	})
	if errors.Is(err, preferences.ErrNotFound) {
		return httperr.NotFound("list")
	}
	if err != nil {
		return err
	}
	out, err := h.withCounts(c.UserContext(), l)
	if err != nil {
		return err
	}
	return c.JSON(out[0])
}

func (h *API) deleteList(c *fiber.Ctx) error {
	err := h.store.DeleteList(c.UserContext(), c.Params("id"), apiauth.Actor(c))
	if errors.Is(err, preferences.ErrNotFound) {
		return httperr.NotFound("list")
	}
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// consentTexts lists every consent text a list has had, in every language, also
// after the list was deleted.
func (h *API) consentTexts(c *fiber.Ctx) error {
	texts, err := h.store.ConsentTexts(c.UserContext(), c.Params("id"))
	if errors.Is(err, preferences.ErrNotFound) {
		return httperr.NotFound("list")
	}
	if err != nil {
		return err
	}
	return httperr.Page(c, texts, "")
}

// consentText returns one consent text version.
func (h *API) consentText(c *fiber.Ctx) error {
	ct, err := h.store.ConsentTextVersion(c.UserContext(), c.Params("version"))
	if errors.Is(err, preferences.ErrNotFound) {
		return httperr.NotFound("consent text")
	}
	if err != nil {
		return err
	}
	return c.JSON(ct)
}

func (h *API) createKey(c *fiber.Ctx) error {
	var in struct {
		Role string `json:"role"`
		Name string `json:"name"`
	}
	if err := httperr.BindJSON(c, &in); err != nil {
		return err
	}
	bad := map[string]string{}
	if !preferences.ValidRole(in.Role) {
		bad["role"] = "must be admin, marketer, dpo or viewer"
	}
	if len(in.Name) > 100 || strings.ContainsAny(in.Name, "\r\n\x00") {
		bad["name"] = "must be one line of at most 100 bytes"
	} else if in.Name == preferences.BootstrapKeyName {
		bad["name"] = "is reserved for the key of CONSENTMAIL_ADMIN_API_KEY"
	}
	if len(bad) > 0 {
		return httperr.Invalid(bad)
	}
	k, key, err := h.store.CreateAPIKey(c.UserContext(), in.Role, in.Name)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"id": k.ID, "name": k.Name, "role": k.Role,
		"created_at": k.CreatedAt, "key": key})
}

func (h *API) keys(c *fiber.Ctx) error {
	ks, err := h.store.APIKeys(c.UserContext())
	if err != nil {
		return err
	}
	return httperr.Page(c, ks, "")
}

func (h *API) deleteKey(c *fiber.Ctx) error {
	err := h.store.DeleteAPIKey(c.UserContext(), c.Params("id"))
	if errors.Is(err, preferences.ErrNotFound) {
		return httperr.NotFound("API key")
	}
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *API) ledger(c *fiber.Ctx) error {
	limit, err := httperr.Limit(c)
	if err != nil {
		return err
	}
	var after uint64
	if cur := c.Query("cursor"); cur != "" {
		if after, err = strconv.ParseUint(cur, 10, 64); err != nil {
			return httperr.Invalid(map[string]string{"cursor": "is not a cursor from this endpoint"})
		}
	}
	events, next, err := h.store.Ledger(c.UserContext(), preferences.LedgerQuery{Subscriber: c.Query("subscriber"),
		Type: c.Query("type"), After: after, Limit: limit})
	if err != nil {
		return err
	}
	cursor := ""
	if next > 0 {
		cursor = strconv.FormatUint(next, 10)
	}
	return httperr.Page(c, events, cursor)
}

// backup streams a consistent snapshot of the whole data file while the service
// runs (one read transaction), with the key file, as a tar archive of known length. Personal data in it is sealed as in
// the store; it is still the store: keep it as safely.
func (h *API) backup(c *fiber.Ctx) error {
	snap, err := h.store.Snapshot()
	if err != nil {
		return err
	}
	size := snap.Size()
	pr, pw := io.Pipe()
	go func() {
		defer snap.Close()
		_, err := snap.WriteTo(pw)
		pw.CloseWithError(err) // a client gone closes pr: the write fails and the snapshot ends
	}()
	c.Set(fiber.HeaderContentType, "application/x-tar")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="consentmail-`+time.Now().UTC().Format("20060102T150405Z")+`.tar"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Context().SetBodyStream(pr, int(size))
	return nil
}

// head answers the ledger's head signed with the installation's key: saved elsewhere,
// `consentmail ledger verify --head FILE` checks the ledger against it later.
func (h *API) head(c *fiber.Ctx) error {
	res, err := h.store.LedgerHead(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func (h *API) verify(c *fiber.Ctx) error {
	res, err := h.store.VerifyLedger(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(res)
}
