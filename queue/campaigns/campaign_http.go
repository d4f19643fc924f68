package campaigns

import (
	"encoding/json"
	"errors"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
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
	r.Patch("/api/v1/campaigns/:id", editors, h.update)
	r.Delete("/api/v1/campaigns/:id", editors, h.delete)
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
	case errors.Is(err, ErrNotDraft):
		return httperr.New(fiber.StatusConflict, "not_draft", "only a draft can be changed or deleted")
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
	emails, err := TestEmails(in.Emails)
	if err != nil {
		return httpError(err)
	}
	if err := h.engine.Test(c.UserContext(), c.Params("id"), emails); err != nil {
		return campaignError(err)
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "queued", "emails": len(emails)})
}

// update applies a PATCH: the fields present in the body replace the draft's, the
// others stay ("send_at": null clears the schedule); "template" or "html" replaces
// the content (with "text", "" when absent).
func (h *CampaignAPI) update(c *fiber.Ctx) error {
	var patch map[string]json.RawMessage
	if err := httperr.BindJSON(c, &patch); err != nil {
		return err
	}
	ctx := c.UserContext()
	camp, err := h.engine.Get(ctx, c.Params("id"))
	if err != nil {
		return campaignError(err)
	}
	in := camp.Input()
	if _, ok := patch["template"]; ok {
		in.HTML, in.Text = "", ""
	} else if _, ok := patch["html"]; ok {
		in.Text = ""
	}
	fields := map[string]any{"name": &in.Name, "subject": &in.Subject, "lists": &in.Lists, "template": &in.Template,
		"html": &in.HTML, "text": &in.Text, "from": &in.From, "send_at": &in.SendAt, "track": &in.Track}
	for k, raw := range patch {
		dst, ok := fields[k]
		if !ok {
			return httperr.Invalid(map[string]string{k: "is not a field of a campaign"})
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return httperr.Invalid(map[string]string{k: "has the wrong type"})
		}
	}
	if _, ok := patch["template"]; ok && in.Template != "" {
		if _, set := patch["subject"]; !set {
			in.Subject = "" // the template's, unless the patch gives one
		}
	}
	out, err := h.engine.Update(ctx, camp.ID, in)
	if err != nil {
		return campaignError(err)
	}
	return c.JSON(out)
}

func (h *CampaignAPI) delete(c *fiber.Ctx) error {
	if err := h.engine.Delete(c.UserContext(), c.Params("id")); err != nil {
		return campaignError(err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}
