package campaigns

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/httperr"
	"consentmail/templates"
)

// SubscriberReader reads one subscriber of the consent book, opened (an error
// wrapping preferences.ErrNotFound when there is none), and logs a read of personal
// data as an unmasked event. *preferences.Store is one.
type SubscriberReader interface {
	Subscriber(ctx context.Context, id string) (*preferences.Subscriber, error)
	RecordUnmasked(ctx context.Context, subscribers []string, actor, reason string) error
}

// FooterConfig is what previews put in the mandatory footer besides its links.
type FooterConfig struct {
	BaseURL       string // public base URL; previews link to BaseURL+"/u/preview" and BaseURL+"/p/preview"
	PostalAddress string
	Company       string
}

// API serves the templates endpoints of the admin API (contract §4.5).
type API struct {
	store       *Store
	subscribers SubscriberReader
	guard       *apiauth.Guard
	footer      FooterConfig
}

// NewAPI returns the templates API over store.
func NewAPI(store *Store, subscribers SubscriberReader, guard *apiauth.Guard, footer FooterConfig) *API {
	footer.BaseURL = strings.TrimRight(footer.BaseURL, "/")
	return &API{store: store, subscribers: subscribers, guard: guard, footer: footer}
}

// Routes mounts the endpoints on r (the application root). Admins and marketers write
// and preview; every role may read.
func (h *API) Routes(r fiber.Router) {
	readers := h.guard.Require(preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleViewer)
	editors := h.guard.Require(preferences.RoleMarketer)

	r.Post("/api/v1/templates", editors, h.create)
	r.Get("/api/v1/templates", readers, h.list)
	r.Get("/api/v1/templates/:id", readers, h.get)
	r.Put("/api/v1/templates/:id", editors, h.update)
	r.Delete("/api/v1/templates/:id", editors, h.delete)
	r.Post("/api/v1/templates/:id/preview", editors, h.preview)
}

// templateInput is the JSON body of POST and PUT.
type templateInput struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	HTML    string `json:"html"`
	Text    string `json:"text"`
}

// httpError chooses the status of a store error.
func httpError(err error) error {
	var te *templates.TemplateError
	var fe *FieldError
	switch {
	case errors.As(err, &te):
		msg := te.Reason
		if te.Line > 0 {
			msg = "line " + strconv.Itoa(te.Line) + ": " + te.Reason
		}
		return httperr.Invalid(map[string]string{te.Part: msg})
	case errors.As(err, &fe):
		return httperr.Invalid(map[string]string{fe.Field: fe.Reason})
	case errors.Is(err, ErrNotFound):
		return httperr.NotFound("template")
	}
	return err
}

func (h *API) create(c *fiber.Ctx) error {
	var in templateInput
	if err := httperr.BindJSON(c, &in); err != nil {
		return err
	}
	t, err := h.store.Create(c.UserContext(), Template{Name: in.Name, Subject: in.Subject, HTML: in.HTML, Text: in.Text})
	if err != nil {
		return httpError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(t)
}

func (h *API) list(c *fiber.Ctx) error {
	limit, err := httperr.Limit(c)
	if err != nil {
		return err
	}
	items, next, err := h.store.List(c.UserContext(), c.Query("cursor"), limit)
	if err != nil {
		return err
	}
	return httperr.Page(c, items, next)
}

func (h *API) get(c *fiber.Ctx) error {
	t, err := h.store.Get(c.UserContext(), c.Params("id"))
	if err != nil {
		return httpError(err)
	}
	return c.JSON(t)
}

func (h *API) update(c *fiber.Ctx) error {
	var in templateInput
	if err := httperr.BindJSON(c, &in); err != nil {
		return err
	}
	t, err := h.store.Update(c.UserContext(), Template{ID: c.Params("id"), Name: in.Name, Subject: in.Subject, HTML: in.HTML, Text: in.Text})
	if err != nil {
		return httpError(err)
	}
	return c.JSON(t)
}

func (h *API) delete(c *fiber.Ctx) error {
	if err := h.store.Delete(c.UserContext(), c.Params("id")); err != nil {
		return httpError(err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// sampleSubscriber is who a preview without a subscriber is rendered for.
var sampleSubscriber = templates.SubscriberData{Name: "Ana Example", Email: "ana@example.org", Locale: "en",
	Attributes: map[string]any{"city": "Lyon"}}

func (h *API) preview(c *fiber.Ctx) error {
	var in struct {
		Subscriber string `json:"subscriber"`
	}
	if len(c.Body()) > 0 {
		if err := httperr.BindJSON(c, &in); err != nil {
			return err
		}
	}
	ctx := c.UserContext()
	t, err := h.store.Get(ctx, c.Params("id"))
	if err != nil {
		return httpError(err)
	}
	r, err := h.Preview(ctx, t, in.Subscriber, apiauth.Caller(c).Role, apiauth.Actor(c))
	if errors.Is(err, preferences.ErrNotFound) {
		return httperr.NotFound("subscriber")
	}
	if err != nil {
		return httpError(err)
	}
	return c.JSON(fiber.Map{"subject": r.Subject, "html": r.HTML, "text": r.Text})
}

// Preview renders t, saved or not, exactly as a campaign would (footer included),
// for subscriber, or for sample data when subscriber is "". Roles that see personal
// data see the person's; the read is then recorded as unmasked by actor. Others see
// the masked address and withheld name and attribute values. Errors: one wrapping
// preferences.ErrNotFound for an unknown subscriber, a *templates.TemplateError for
// a template that does not parse, a *FieldError on "subscriber" for data the template
// cannot be rendered with.
func (h *API) Preview(ctx context.Context, t Template, subscriber, role, actor string) (templates.Rendered, error) {
	sub := sampleSubscriber
	sub.Attributes = map[string]any{"city": "Lyon"}
	unmasked := "" // the subscriber whose data the answer shows
	if subscriber != "" {
		s, err := h.subscribers.Subscriber(ctx, subscriber)
		if err != nil {
			return templates.Rendered{}, err
		}
		// Admins see the person's data, and the read is logged once rendered;
		// marketers preview with the masked address and withheld name and attribute
		// values.
		if !preferences.SeesPersonalData(role) {
			s.Mask(role)
		} else if s.Email != "" {
			unmasked = s.ID
		}
		sub = templates.SubscriberData{Name: s.Name, Email: s.Email, Locale: s.Locale, Attributes: s.Attributes}
	}
	lang := sub.Locale
	if lang == "" {
		lang = "en"
	}
	camp, err := templates.ParseCampaign(t.Subject, t.HTML, t.Text)
	if err != nil {
		return templates.Rendered{}, err
	}
	unsub, prefs := h.footer.BaseURL+"/u/preview", h.footer.BaseURL+"/p/preview"
	r, err := camp.Render(templates.CampaignData{Subscriber: sub, Campaign: templates.CampaignInfo{ID: "preview", Name: t.Name},
		UnsubscribeURL: unsub, PreferencesURL: prefs},
		templates.Footer{Lang: lang, UnsubscribeURL: unsub, PreferencesURL: prefs,
			PostalAddress: h.footer.PostalAddress, Company: h.footer.Company})
	if err != nil {
		// Data the template did not expect, such as an attribute of another type.
		return templates.Rendered{}, &FieldError{Field: "subscriber", Reason: "the template cannot be rendered with this subscriber's data: " + err.Error()}
	}
	if unmasked != "" {
		if err := h.subscribers.RecordUnmasked(ctx, []string{unmasked}, actor, "preview"); err != nil {
			return templates.Rendered{}, err
		}
	}
	return r, nil
}
