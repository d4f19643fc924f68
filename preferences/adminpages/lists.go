package adminpages

import (
	"errors"
	"html"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/apiauth"
)

// listRow is one line of the lists' table.
type listRow struct {
	List      preferences.List
	Counts    preferences.ListCounts
	Retention int64 // days
}

func (p *Pages) lists(c *fiber.Ctx) error {
	all := p.store.AllLists()
	ids := make([]string, len(all))
	for i, l := range all {
		ids[i] = l.ID
	}
	counts, err := p.store.CountMembers(c.UserContext(), ids...)
	if err != nil {
		return err
	}
	rows := make([]listRow, len(all))
	for i, l := range all {
		rows[i] = listRow{List: l, Counts: counts[l.ID], Retention: int64(l.RetentionDays)}
	}
	return p.render(c, view{name: "lists", section: "lists", title: "lists.title", data: rows})
}

// listPage is a list's own page.
type listPage struct {
	List       preferences.List
	Counts     preferences.ListCounts
	Retention  int64 // days
	LegalBasis string
	Versions   []preferences.ConsentText
	FormURL    string
	Snippets   []snippet
	Confirm    string            // what was typed in the delete confirmation
	Errors     map[string]string // field -> catalog key
}

// snippet is the HTML a website pastes to sign people up in one language.
type snippet struct {
	Locale string
	HTML   string
}

func (p *Pages) list(c *fiber.Ctx) error {
	l, err := p.store.List(c.UserContext(), c.Params("id"))
	if errors.Is(err, preferences.ErrNotFound) {
		return p.problem(c, fiber.StatusNotFound, "lists", "lists.err.not_found")
	}
	if err != nil {
		return err
	}
	return p.renderList(c, l, fiber.StatusOK, "", nil)
}

func (p *Pages) renderList(c *fiber.Ctx, l preferences.List, status int, confirm string, bad map[string]string) error {
	counts, err := p.store.CountMembers(c.UserContext(), l.ID)
	if err != nil {
		return err
	}
	versions, err := p.store.ConsentTexts(c.UserContext(), l.ID)
	if err != nil && !errors.Is(err, preferences.ErrNotFound) {
		return err
	}
	slices.Reverse(versions) // newest first
	d := listPage{List: l, Counts: counts[l.ID], Retention: int64(l.RetentionDays), LegalBasis: preferences.LegalBasisConsent, Versions: versions,
		FormURL: p.baseURL + "/subscribe/" + l.ID, Confirm: confirm, Errors: bad}
	for _, loc := range preferences.Locales {
		if _, ok := l.Translations[loc]; ok || loc == preferences.DefaultLocale {
			d.Snippets = append(d.Snippets, snippet{Locale: loc, HTML: p.snippet(l, loc)})
		}
	}
	errKey := ""
	if len(bad) > 0 {
		errKey = "book.err.form"
	}
	return p.render(c, view{name: "list", section: "lists", title: "lists.page.title", titleArgs: []any{l.Name},
		status: status, errKey: errKey, data: d})
}

// snippet is a plain HTML form posting to the list's hosted form, in locale: the
// address, the consent box with the list's consent text in that language, and the
// hosted form's honeypot field (website), hidden from people.
func (p *Pages) snippet(l preferences.List, locale string) string {
	shown, _ := l.In(locale)
	t := func(key string) string { return html.EscapeString(p.views.T(locale, key)) }
	id := "cm-" + l.ID + "-" + locale
	var b strings.Builder
	b.WriteString(`<form method="post" action="` + html.EscapeString(p.baseURL+"/subscribe/"+url.PathEscape(l.ID)+"/embedded") + `">` + "\n")
	b.WriteString(`  <input type="hidden" name="locale" value="` + locale + `">` + "\n")
	b.WriteString(`  <p><label for="` + id + `-email">` + t("lists.snippet.email") + `</label>` + "\n")
	b.WriteString(`  <input id="` + id + `-email" name="email" type="email" required maxlength="254" autocomplete="email"></p>` + "\n")
	b.WriteString(`  <p aria-hidden="true" style="position:absolute;left:-10000px"><label for="` + id + `-website">` +
		t("lists.snippet.honeypot") + `</label>` + "\n")
	b.WriteString(`  <input id="` + id + `-website" name="website" type="text" tabindex="-1" autocomplete="off"></p>` + "\n")
	b.WriteString(`  <p><label><input type="checkbox" name="consent" value="true" required> ` +
		html.EscapeString(shown.ConsentText) + `</label></p>` + "\n")
	if l.PrivacyURL != "" {
		b.WriteString(`  <p><a href="` + html.EscapeString(l.PrivacyURL) + `">` + t("lists.snippet.privacy") + `</a></p>` + "\n")
	}
	b.WriteString(`  <button type="submit">` + t("lists.snippet.submit") + `</button>` + "\n")
	b.WriteString(`</form>`)
	return b.String()
}

// listForm is the create and edit form, as typed.
type listForm struct {
	New           bool
	ID            string
	Name          string
	Purpose       string
	ConsentText   string
	PrivacyURL    string
	RetentionDays string
	Public        bool
	Translations  []translationForm
	LegalBasis    string
	Versions      []preferences.ConsentText
	Errors        map[string]string // field -> catalog key
}

// translationForm is a list's texts in one language other than the base one.
type translationForm struct {
	Locale, Name, Purpose, ConsentText string
}

// otherLocales are the languages a list may be translated into: its base fields are
// in preferences.DefaultLocale.
func otherLocales() []string {
	var out []string
	for _, loc := range preferences.Locales {
		if loc != preferences.DefaultLocale {
			out = append(out, loc)
		}
	}
	return out
}

func formOf(l preferences.List) listForm {
	f := listForm{ID: l.ID, Name: l.Name, Purpose: l.Purpose, ConsentText: l.ConsentText, PrivacyURL: l.PrivacyURL,
		RetentionDays: strconv.Itoa(l.RetentionDays), Public: l.Public}
	for _, loc := range otherLocales() {
		t := l.Translations[loc]
		f.Translations = append(f.Translations, translationForm{Locale: loc, Name: t.Name, Purpose: t.Purpose,
			ConsentText: t.ConsentText})
	}
	return f
}

// readForm reads the posted form, trimmed as the API trims.
func readForm(c *fiber.Ctx) listForm {
	v := func(k string) string { return strings.TrimSpace(c.FormValue(k)) }
	f := listForm{ID: v("id"), Name: v("name"), Purpose: v("purpose"), ConsentText: v("consent_text"),
		PrivacyURL: v("privacy_url"), RetentionDays: v("retention_days"), Public: c.FormValue("public") == "true"}
	for _, loc := range otherLocales() {
		f.Translations = append(f.Translations, translationForm{Locale: loc, Name: v(loc + ".name"),
			Purpose: v(loc + ".purpose"), ConsentText: v(loc + ".consent_text")})
	}
	return f
}

// apply writes the form into l and returns the fields it refuses, by the consent
// book's rule for a list (preferences.ValidateList), as catalog keys.
func (f listForm) apply(l *preferences.List) map[string]string {
	l.Name, l.Purpose, l.ConsentText, l.PrivacyURL, l.Public = f.Name, f.Purpose, f.ConsentText, f.PrivacyURL, f.Public
	l.Translations = map[string]preferences.ListText{}
	for _, t := range f.Translations {
		if t.Name == "" && t.Purpose == "" && t.ConsentText == "" {
			continue // not translated
		}
		l.Translations[t.Locale] = preferences.ListText{Name: t.Name, Purpose: t.Purpose, ConsentText: t.ConsentText}
	}
	days, err := strconv.Atoi(f.RetentionDays)
	if err != nil {
		days = 0 // refused below
	}
	l.RetentionDays = days
	problems := preferences.ValidateList(l)
	if problems == nil {
		return nil
	}
	bad := map[string]string{}
	for field, problem := range problems {
		// The form names a translation's fields LANG.FIELD.
		bad[strings.TrimPrefix(field, "translations.")] = "lists.err." + problem
	}
	return bad
}

func (p *Pages) renderForm(c *fiber.Ctx, f listForm, status int) error {
	f.LegalBasis = preferences.LegalBasisConsent
	title, args := "lists.new.title", []any(nil)
	if !f.New {
		versions, err := p.store.ConsentTexts(c.UserContext(), f.ID)
		if err != nil && !errors.Is(err, preferences.ErrNotFound) {
			return err
		}
		slices.Reverse(versions)
		f.Versions = versions
		title, args = "lists.edit.title", []any{f.ID}
	}
	errKey := ""
	if len(f.Errors) > 0 {
		errKey = "book.err.form"
	}
	return p.render(c, view{name: "list_form", section: "lists", title: title, titleArgs: args, status: status,
		errKey: errKey, data: f})
}

func (p *Pages) newList(c *fiber.Ctx) error {
	f := formOf(preferences.List{RetentionDays: preferences.DefaultRetentionDays, Public: true})
	f.New = true
	return p.renderForm(c, f, fiber.StatusOK)
}

func (p *Pages) createList(c *fiber.Ctx) error {
	f := readForm(c)
	f.New = true
	l := preferences.List{ID: f.ID}
	if f.Errors = f.apply(&l); f.Errors != nil {
		return p.renderForm(c, f, fiber.StatusUnprocessableEntity)
	}
	if len(l.Translations) == 0 {
		l.Translations = nil
	}
	_, err := p.store.CreateList(c.UserContext(), l)
	if errors.Is(err, preferences.ErrConflict) {
		f.Errors = map[string]string{"id": "lists.err.id_taken"}
		return p.renderForm(c, f, fiber.StatusConflict)
	}
	if err != nil {
		return err
	}
	return redirect(c, "/admin/lists/"+l.ID, "list_created")
}

func (p *Pages) editList(c *fiber.Ctx) error {
	l, err := p.store.List(c.UserContext(), c.Params("id"))
	if errors.Is(err, preferences.ErrNotFound) {
		return p.problem(c, fiber.StatusNotFound, "lists", "lists.err.not_found")
	}
	if err != nil {
		return err
	}
	return p.renderForm(c, formOf(l), fiber.StatusOK)
}

// errInvalid stops UpdateList when the form is refused: nothing is saved.
var errInvalid = errors.New("invalid list")

func (p *Pages) updateList(c *fiber.Ctx) error {
	id := c.Params("id")
	f := readForm(c)
	f.ID = id
	_, err := p.store.UpdateList(c.UserContext(), id, func(l *preferences.List) error {
		if f.Errors = f.apply(l); f.Errors != nil {
			return errInvalid
		}
		return nil
	})
	switch {
	case errors.Is(err, errInvalid):
		return p.renderForm(c, f, fiber.StatusUnprocessableEntity)
	case errors.Is(err, preferences.ErrNotFound):
		return p.problem(c, fiber.StatusNotFound, "lists", "lists.err.not_found")
	case err != nil:
		return err
	}
	return redirect(c, "/admin/lists/"+id, "list_saved")
}

// deleteList deletes a list once its id is typed as confirmation: every subscription
// to it ends, each with an unsubscribed event naming the person.
func (p *Pages) deleteList(c *fiber.Ctx) error {
	l, err := p.store.List(c.UserContext(), c.Params("id"))
	if errors.Is(err, preferences.ErrNotFound) {
		return p.problem(c, fiber.StatusNotFound, "lists", "lists.err.not_found")
	}
	if err != nil {
		return err
	}
	typed := strings.TrimSpace(c.FormValue("confirm"))
	if typed != l.ID {
		return p.renderList(c, l, fiber.StatusUnprocessableEntity, typed, map[string]string{"confirm": "lists.err.confirm"})
	}
	err = p.store.DeleteList(c.UserContext(), l.ID, apiauth.Actor(c))
	if errors.Is(err, preferences.ErrNotFound) {
		return p.problem(c, fiber.StatusNotFound, "lists", "lists.err.not_found")
	}
	if err != nil {
		return err
	}
	return redirect(c, "/admin/lists", "list_deleted")
}
