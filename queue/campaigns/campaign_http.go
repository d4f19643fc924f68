package campaigns

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/address"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/httperr"
)

// CampaignAPI serves the campaigns endpoints of the admin API (contract §4.5).
type CampaignAPI struct {
	engine *Engine
	guard  *apiauth.Guard
}

// NewCampaignAPI returns the campaigns API over engine.
func NewCampaignAPI(engine *Engine, guard *apiauth.Guard) *CampaignAPI {
	return &CampaignAPI{engine: engine, guard: guard}
}

// Routes mounts the endpoints on r (the application root). Admins and marketers
// create and act; every role may read.
func (h *CampaignAPI) Routes(r fiber.Router) {
	readers := h.guard.Require(preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleViewer)
	editors := h.guard.Require(preferences.RoleMarketer)

	r.Post("/api/v1/campaigns", editors, h.create)
	r.Get("/api/v1/campaigns", readers, h.list)
	r.Get("/api/v1/campaigns/:id", readers, h.get)
	for _, action := range []string{ActionStart, ActionPause, ActionResume, ActionCancel} {
		r.Post("/api/v1/campaigns/:id/"+action, editors, h.act(action))
	}
	r.Post("/api/v1/campaigns/:id/test", editors, h.test)
}

// campaignError chooses the status of an engine error.
func campaignError(err error) error {
	var te *TransitionError
	switch {
	case errors.As(err, &te):
		return httperr.New(fiber.StatusConflict, "conflict", te.Error())
	case errors.Is(err, ErrCampaignNotFound):
		return httperr.NotFound("campaign")
	}
	return httpError(err)
}

func (h *CampaignAPI) create(c *fiber.Ctx) error {
	var in Input
	if err := httperr.BindJSON(c, &in); err != nil {
		return err
	}
	camp, err := h.engine.Create(c.UserContext(), in)
	if err != nil {
		return campaignError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(camp)
}

func (h *CampaignAPI) list(c *fiber.Ctx) error {
	limit, err := httperr.Limit(c)
	if err != nil {
		return err
	}
	items, next, err := h.engine.List(c.UserContext(), c.Query("cursor"), limit)
	if err != nil {
		return err
	}
	return httperr.Page(c, items, next)
}

func (h *CampaignAPI) get(c *fiber.Ctx) error {
	camp, err := h.engine.Get(c.UserContext(), c.Params("id"))
	if err != nil {
		return campaignError(err)
	}
	return c.JSON(camp)
}

func (h *CampaignAPI) act(action string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		camp, err := h.engine.Act(c.UserContext(), c.Params("id"), action)
		if err != nil {
			return campaignError(err)
		}
		return c.JSON(camp)
	}
}

func (h *CampaignAPI) test(c *fiber.Ctx) error {
	var in struct {
		Emails []string `json:"emails"`
	}
	if err := httperr.BindJSON(c, &in); err != nil {
		return err
	}
	if len(in.Emails) == 0 || len(in.Emails) > MaxTestEmails {
		return httperr.Invalid(map[string]string{"emails": "give between 1 and 10 addresses"})
	}
	emails := make([]string, 0, len(in.Emails))
	for _, e := range in.Emails {
		addr, _, err := address.Normalise(e)
		if err != nil {
			return httperr.Invalid(map[string]string{"emails": "not an email address: " + e})
		}
		emails = append(emails, addr)
	}
	if err := h.engine.Test(c.UserContext(), c.Params("id"), emails); err != nil {
		return campaignError(err)
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "queued", "emails": len(emails)})
}
