// Package adminpages serves the Templates and Campaigns pages of the admin web app
// (/admin/templates, /admin/campaigns): lists, the template editor with its errors
// shown at their line, a live preview in a sandboxed frame, test sends, and the
// campaign's draft, lifecycle and live progress.
//
// It writes nothing itself: every change goes through the functions the API calls
// (campaigns.Store for templates, campaigns.Engine for campaigns, campaigns.API's
// Preview), with the API's role rules enforced on the server: every role reads;
// admins and marketers edit, send tests and act on campaigns; a preview with a real
// subscriber's data is for admins and data-protection officers only, and recorded as
// an unmasked read.
package adminpages

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/webauth"
	"consentmail/queue/campaigns"
	"consentmail/templates"
)

//go:embed *.html en.json fr.json
var files embed.FS

// ListInfo is one list as the campaign form shows it before anything is sent.
type ListInfo struct {
	ID         string
	Name       string
	Purpose    string
	LegalBasis string
	Confirmed  int64 // people with a confirmed subscription: who the list reaches
}

// ListsFunc returns the lists a campaign may be sent to, from the consent book.
type ListsFunc func(ctx context.Context) ([]ListInfo, error)

// Pages serves the templates and campaigns pages.
type Pages struct {
	store    *campaigns.Store
	engine   *campaigns.Engine
	previews *campaigns.API
	lists    ListsFunc
	site     templates.Site
	views    *templates.AdminViews
	drafts   *drafts
	now      func() time.Time
}

// New returns the pages over the templates store, the campaign engine, the
// templates API (for its Preview) and the consent book's lists; renderer parses the
// pages with the admin layout.
func New(store *campaigns.Store, engine *campaigns.Engine, previews *campaigns.API, lists ListsFunc,
	renderer *templates.Renderer, site templates.Site, now func() time.Time) (*Pages, error) {
	views, err := renderer.AdminViews(files)
	if err != nil {
		return nil, err
	}
	return &Pages{store: store, engine: engine, previews: previews, lists: lists, site: site, views: views,
		drafts: newDrafts(now), now: now}, nil
}

// Routes mounts the pages on r, the /admin group (behind the session and its CSRF
// check); require admits the given roles (admins always).
func (p *Pages) Routes(r fiber.Router, require func(roles ...string) fiber.Handler) {
	readers := require(preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleViewer)
	editors := require(preferences.RoleMarketer)

	r.Get("/templates", readers, p.templateList)
	r.Get("/templates/new", editors, p.templateNew)
	r.Post("/templates", editors, p.templateCreate)
	r.Get("/templates/:id", readers, p.templateEdit)
	r.Post("/templates/:id", editors, p.templateSave)
	r.Post("/templates/:id/delete", editors, p.templateDelete)
	r.Post("/templates/:id/preview", editors, p.templatePreviewDraft)
	r.Get("/templates/:id/preview", readers, p.templatePreviewFrame)
	r.Post("/templates/:id/test", editors, p.templateTest)

	r.Get("/campaigns", readers, p.campaignList)
	r.Get("/campaigns/new", editors, p.campaignNew)
	r.Post("/campaigns", editors, p.campaignCreate)
	r.Get("/campaigns/:id", readers, p.campaignShow)
	r.Get("/campaigns/:id/progress", readers, p.campaignProgress)
	r.Get("/campaigns/:id/preview", readers, p.campaignPreviewFrame)
	r.Get("/campaigns/:id/edit", editors, p.campaignEdit)
	r.Post("/campaigns/:id", editors, p.campaignSave)
	r.Post("/campaigns/:id/delete", editors, p.campaignDelete)
	r.Post("/campaigns/:id/test", editors, p.campaignTest)
	for _, a := range []string{campaigns.ActionStart, campaigns.ActionPause, campaigns.ActionResume, campaigns.ActionCancel} {
		r.Post("/campaigns/:id/"+a, editors, p.campaignAct(a))
	}
}

// page renders a page of the feature.
func (p *Pages) page(c *fiber.Ctx, status int, name, section, titleKey string, data any, args ...any) error {
	return p.render(c, status, name, p.pageOf(c, section, titleKey, data, args...))
}

// pageOf builds a page of the feature, with the flash a redirect asked for.
func (p *Pages) pageOf(c *fiber.Ctx, section, titleKey string, data any, args ...any) templates.AdminPage {
	pg := webauth.Page(c, p.site, section, "", data)
	pg.Title = p.views.T(pg.Lang, titleKey, args...)
	if key := c.Query("done"); flashes[key] {
		pg.Flash = p.views.T(pg.Lang, "campaignpages.flash."+key)
	}
	return pg
}

func (p *Pages) render(c *fiber.Ctx, status int, name string, pg templates.AdminPage) error {
	return webauth.Render(c, status, p.views, name, pg)
}

// webauthLang is the language of the person's pages.
func webauthLang(c *fiber.Ctx) string {
	return webauth.Page(c, templates.Site{}, "", "", nil).Lang
}

// flashes are the confirmations a redirect may ask for (?done=KEY).
var flashes = map[string]bool{"saved": true, "deleted": true, "tested": true, "created": true, "start": true,
	"pause": true, "resume": true, "cancel": true}

// role is the signed-in person's role.
func role(c *fiber.Ctx) string {
	s, _ := webauth.Current(c)
	return s.Role
}

// canEdit mirrors the API's editors: admins and marketers.
func canEdit(c *fiber.Ctx) bool {
	r := role(c)
	return r == preferences.RoleAdmin || r == preferences.RoleMarketer
}

// actor names the person for the ledger.
func actor(c *fiber.Ctx) string { return apiauth.Actor(c) }

// drafts keeps the unsaved content of template editors for their preview frame: a
// frame is loaded by its own GET, which cannot carry the whole content.
type drafts struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]draft
}

type draft struct {
	user    string
	tpl     campaigns.Template
	expires time.Time
}

const (
	draftTTL = 30 * time.Minute
	maxDraft = 512
)

func newDrafts(now func() time.Time) *drafts { return &drafts{now: now, m: map[string]draft{}} }

// put keeps t for user and returns its token.
func (d *drafts) put(user string, t campaigns.Template) string {
	var b [12]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	tok := hex.EncodeToString(b[:])
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range d.m {
		if now.After(v.expires) {
			delete(d.m, k)
		}
	}
	if len(d.m) >= maxDraft {
		var oldest string
		for k, v := range d.m {
			if oldest == "" || v.expires.Before(d.m[oldest].expires) {
				oldest = k
			}
		}
		delete(d.m, oldest)
	}
	d.m[tok] = draft{user: user, tpl: t, expires: now.Add(draftTTL)}
	return tok
}

// get returns the draft tok of user.
func (d *drafts) get(user, tok string) (campaigns.Template, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.m[tok]
	if !ok || v.user != user || d.now().After(v.expires) {
		return campaigns.Template{}, false
	}
	return v.tpl, true
}
