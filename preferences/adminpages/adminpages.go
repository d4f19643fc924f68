// Package adminpages serves the consent book's pages of the admin web app (/admin):
// lists (their subscriber counts, consent text history, hosted form and a snippet to
// paste into a website), subscribers (a masked, paged table and a person's page with
// the data-subject actions) and the DPO's tools (the ledger, its verification, the
// register of processing activities, finding a person by address).
//
// The pages enforce the admin API's rules, server-side, through the same domain
// functions: marketers and viewers never see a full address, name or attribute value
// (Subscriber.Mask); only admins and DPOs read the ledger, find a person by address,
// unmask an address (an unmasked ledger event, recorded before it is shown), export,
// restrict, rectify and erase; only admins and marketers change lists. Every ledger
// event a page causes names the signed-in person (apiauth.Actor).
//
// The pages work without JavaScript: every change is a form POST answered with a
// redirect (303) and a confirmation, or with the form again and its errors.
package adminpages

import (
	"context"
	"embed"
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/webauth"
	"consentmail/templates"
)

//go:embed *.html en.json fr.json
var files embed.FS

// Eraser erases a subscriber; *preferences.Eraser is the one erasure.
type Eraser interface {
	Erase(ctx context.Context, subscriber, actor string) (preferences.ErasureReceipt, error)
}

// Pages serves the consent book's admin pages.
type Pages struct {
	store    *preferences.Store
	views    *templates.AdminViews
	site     templates.Site
	eraser   Eraser
	history  preferences.CampaignHistory
	enqueue  preferences.EnqueueTx
	register preferences.RegisterSite
	baseURL  string
}

// New returns the pages over store. site brands them; eraser is the one erasure;
// history (nil: none) is the campaigns part of an export; enqueue queues the
// confirmation mail of a rectified address (optin.OptinEnqueuer); register is what
// the register of processing says about the company; baseURL (such as
// https://news.example.org) is where the hosted forms are, for the links and
// snippets shown on a list's page.
func New(store *preferences.Store, renderer *templates.Renderer, site templates.Site, eraser Eraser,
	history preferences.CampaignHistory, enqueue preferences.EnqueueTx, register preferences.RegisterSite,
	baseURL string) (*Pages, error) {
	views, err := renderer.AdminViews(files)
	if err != nil {
		return nil, err
	}
	return &Pages{store: store, views: views, site: site, eraser: eraser, history: history, enqueue: enqueue,
		register: register, baseURL: strings.TrimRight(baseURL, "/")}, nil
}

// Routes mounts the pages on r, the /admin group (behind the session and the CSRF
// check); require admits the roles it names, and admins always.
func (p *Pages) Routes(r fiber.Router, require func(roles ...string) fiber.Handler) {
	anyRole := require(preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleViewer)
	editors := require(preferences.RoleMarketer)
	dpo := require(preferences.RoleDPO)

	r.Get("/lists", anyRole, p.lists)
	// "_new" is no list id ([a-z0-9-]), so no list's page is hidden by the form.
	r.Get("/lists/_new", editors, p.newList)
	r.Post("/lists", editors, p.createList)
	r.Get("/lists/:id", anyRole, p.list)
	r.Get("/lists/:id/edit", editors, p.editList)
	r.Post("/lists/:id", editors, p.updateList)
	r.Post("/lists/:id/delete", editors, p.deleteList)

	r.Get("/subscribers", anyRole, p.subscribers)
	r.Post("/subscribers/lookup", dpo, p.lookup)
	r.Get("/subscribers/:id", anyRole, p.subscriber)
	r.Post("/subscribers/:id/unmask", dpo, p.unmask)
	r.Get("/subscribers/:id/export", dpo, p.export)
	r.Post("/subscribers/:id/restrict", dpo, p.restrict(true))
	r.Post("/subscribers/:id/unrestrict", dpo, p.restrict(false))
	r.Post("/subscribers/:id/rectify", dpo, p.rectify)
	r.Post("/subscribers/:id/erase", dpo, p.erase)

	r.Get("/dpo", dpo, p.dpo)
	r.Get("/dpo/ledger", dpo, p.ledger)
	r.Get("/dpo/verify", dpo, p.verify)
	r.Get("/dpo/register", dpo, p.registerPage)
	r.Get("/dpo/register.json", dpo, p.registerJSON)
	r.Get("/dpo/register.md", dpo, p.registerMarkdown)
}

// flashes are the confirmations a redirect may ask for (?done=CODE): only these,
// so that no link can put words of its own on a page.
var flashes = map[string]bool{"list_created": true, "list_saved": true, "list_deleted": true,
	"restricted": true, "unrestricted": true, "rectified": true, "rectified_email": true, "unchanged": true, "erased": true}

// view is one page about to be rendered.
type view struct {
	name, section, title string
	titleArgs            []any
	status               int
	errKey               string // an error shown at the top of the page: a catalog key
	data                 any
}

// render writes v as the response.
func (p *Pages) render(c *fiber.Ctx, v view) error {
	pg := webauth.Page(c, p.site, v.section, "", v.data)
	pg.Title = p.views.T(pg.Lang, v.title, v.titleArgs...)
	if code := c.Query("done"); flashes[code] {
		pg.Flash = p.views.T(pg.Lang, "book.done."+code)
	}
	if v.errKey != "" {
		pg.Error = p.views.T(pg.Lang, v.errKey)
	}
	if v.status == 0 {
		v.status = fiber.StatusOK
	}
	return webauth.Render(c, v.status, p.views, v.name, pg)
}

// problem renders a page that only says what went wrong (an unknown list or
// subscriber, a failure of the store) with status.
func (p *Pages) problem(c *fiber.Ctx, status int, section, key string) error {
	return p.render(c, view{name: "problem", section: section, title: "book.problem.title", status: status,
		errKey: key})
}

// redirect answers a POST with a redirect to path and a confirmation.
func redirect(c *fiber.Ctx, path, done string) error {
	if done != "" {
		path += "?done=" + url.QueryEscape(done)
	}
	return c.Redirect(path, fiber.StatusSeeOther)
}

// role is the signed-in person's role.
func role(c *fiber.Ctx) string {
	s, _ := webauth.Current(c)
	return s.Role
}

// domainError maps an error of the consent book to a status and the catalog key of
// its message; ok is false for errors that are not the person's to fix (they go to
// the application's error handler).
func domainError(err error) (status int, key string, ok bool) {
	switch {
	case errors.Is(err, preferences.ErrEmailTaken):
		return fiber.StatusConflict, "book.err.email_taken", true
	case errors.Is(err, preferences.ErrErasureIncomplete):
		return fiber.StatusServiceUnavailable, "book.err.erasure_incomplete", true
	case errors.Is(err, preferences.ErrErased):
		return fiber.StatusConflict, "book.err.erased", true
	case errors.Is(err, preferences.ErrStatus):
		return fiber.StatusConflict, "book.err.restricted", true
	case errors.Is(err, preferences.ErrNotFound):
		return fiber.StatusNotFound, "book.err.not_found", true
	case errors.Is(err, preferences.ErrConflict):
		return fiber.StatusConflict, "book.err.conflict", true
	}
	return fiber.StatusInternalServerError, "", false
}
