package adminpages

import (
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/address"
	"consentmail/preferences/adminapi"
	"consentmail/preferences/apiauth"
)

// statuses are the filters of the subscribers' table: a subscriber's status, or a
// subscription's (with or without a list), as the API takes them.
var statuses = []string{preferences.StatusActive, preferences.StatusRestricted, preferences.StatusBlocked,
	preferences.StatusErased, preferences.SubPending, preferences.SubConfirmed, preferences.SubUnsubscribed}

// subscribersPage is the table of subscribers.
type subscribersPage struct {
	Lists    []preferences.List
	Names    map[string]string // list id -> name
	Statuses []string
	List     string // filters
	Status   string
	Cursor   string
	Next     string // the address of the next page, "" when there is none
	Subs     []*preferences.Subscriber
	Email    string            // typed in the lookup
	Errors   map[string]string // field -> catalog key
}

// pageSize is how many subscribers the table shows at once.
const pageSize = 50

func listNames(lists []preferences.List) map[string]string {
	names := make(map[string]string, len(lists))
	for _, l := range lists {
		names[l.ID] = l.Name
	}
	return names
}

func (p *Pages) subscribers(c *fiber.Ctx) error {
	return p.renderSubscribers(c, fiber.StatusOK, "", nil)
}

func (p *Pages) renderSubscribers(c *fiber.Ctx, status int, email string, bad map[string]string) error {
	lists := p.store.AllLists()
	d := subscribersPage{Lists: lists, Names: listNames(lists), Statuses: statuses, List: c.Query("list"),
		Status: c.Query("status"), Cursor: c.Query("cursor"), Email: email, Errors: bad}
	if d.List != "" && !preferences.ValidListID(d.List) {
		d.List = ""
	}
	if d.Status != "" && !slices.Contains(statuses, d.Status) {
		d.Status = ""
	}
	subs, next, err := p.store.Subscribers(c.UserContext(), preferences.SubscriberQuery{List: d.List, Status: d.Status,
		After: d.Cursor, Limit: pageSize})
	if err != nil {
		return err
	}
	for _, s := range subs {
		s.Mask(role(c)) // the address always; names and attributes too for marketers and viewers
	}
	d.Subs = subs
	if next != "" {
		d.Next = "/admin/subscribers?" + url.Values{"list": {d.List}, "status": {d.Status}, "cursor": {next}}.Encode()
	}
	errKey := ""
	if len(bad) > 0 {
		errKey = "book.err.form"
	}
	return p.render(c, view{name: "subscribers", section: "subscribers", title: "subs.title", status: status,
		errKey: errKey, data: d})
}

// lookup finds a subscriber by their exact address (admins and DPOs): the reader
// knows the address, and the find is logged as an unmasked read (via lookup), as the
// API's lookup is. From the DPO's page (back=dpo), a miss is shown there.
func (p *Pages) lookup(c *fiber.Ctx) error {
	typed := strings.TrimSpace(c.FormValue("email"))
	miss := func(status int, key string) error {
		bad := map[string]string{"email": key}
		if c.FormValue("back") == "dpo" {
			return p.renderDPO(c, status, typed, bad)
		}
		return p.renderSubscribers(c, status, typed, bad)
	}
	_, key, err := address.Normalise(typed)
	switch {
	case typed == "":
		return miss(fiber.StatusUnprocessableEntity, "subs.err.email_required")
	case err != nil:
		return miss(fiber.StatusUnprocessableEntity, "subs.err.email_invalid")
	}
	id, ok := p.store.LookupEmail(c.UserContext(), key)
	if !ok {
		return miss(fiber.StatusNotFound, "subs.err.no_one")
	}
	if err := p.store.RecordUnmasked(c.UserContext(), []string{id}, apiauth.Actor(c), "lookup"); err != nil {
		return err
	}
	return redirect(c, "/admin/subscribers/"+id, "")
}

// personPage is a subscriber's page.
type personPage struct {
	Sub        *preferences.Subscriber
	Masked     string // the masked address: what the erase confirmation accepts besides ERASE
	Unmasked   bool   // Sub.Email is the full address, just recorded as read
	Names      map[string]string
	Timeline   []preferences.Event // newest first; for admins and DPOs only
	Receipt    *preferences.ErasureReceipt
	Name       string // the rectification form, as typed
	NewEmail   string
	Confirm    string // the erase confirmation, as typed
	Errors     map[string]string
	Restricted bool
	Erased     bool
}

func (p *Pages) subscriber(c *fiber.Ctx) error {
	return p.renderPerson(c, personOpts{status: fiber.StatusOK})
}

// personOpts are what a POST that did not redirect shows on the person's page.
type personOpts struct {
	status   int
	unmask   bool
	errKey   string
	receipt  *preferences.ErasureReceipt
	name     *string
	newEmail string
	confirm  string
	bad      map[string]string
}

func (p *Pages) renderPerson(c *fiber.Ctx, o personOpts) error {
	id := c.Params("id")
	sub, err := p.person(c, id)
	if sub == nil {
		return err
	}
	r := role(c)
	d := personPage{Names: listNames(p.store.AllLists()), Unmasked: o.unmask, NewEmail: o.newEmail, Confirm: o.confirm,
		Errors: o.bad, Receipt: o.receipt, Restricted: sub.Status == preferences.StatusRestricted,
		Erased: sub.Status == preferences.StatusErased}
	if sub.Email != "" {
		d.Masked = address.Mask(sub.Email)
	}
	if !o.unmask {
		sub.Mask(r)
	}
	d.Sub = sub
	d.Name = sub.Name
	if o.name != nil {
		d.Name = *o.name
	}
	if preferences.SeesPersonalData(r) {
		events, err := p.timeline(c, id)
		if err != nil {
			return err
		}
		d.Timeline = events
		if d.Erased && d.Receipt == nil {
			for _, e := range events {
				if e.Type == preferences.EventErased {
					d.Receipt = &preferences.ErasureReceipt{Subscriber: id, ErasedAt: e.At, LedgerSeq: e.Seq}
					break
				}
			}
		}
	}
	title, args := "subs.person.title", []any{sub.Email}
	if sub.Email == "" {
		title, args = "subs.person.title_erased", []any{id}
	}
	if o.errKey == "" && len(o.bad) > 0 {
		o.errKey = "book.err.form"
	}
	return p.render(c, view{name: "subscriber", section: "subscribers", title: title, titleArgs: args,
		status: o.status, errKey: o.errKey, data: d})
}

// timeline reads every ledger event of a subscriber, newest first.
func (p *Pages) timeline(c *fiber.Ctx, id string) ([]preferences.Event, error) {
	var out []preferences.Event
	q := preferences.LedgerQuery{Subscriber: id, Limit: 1000}
	for {
		page, next, err := p.store.Ledger(c.UserContext(), q)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == 0 {
			break
		}
		q.After = next
	}
	slices.Reverse(out)
	return out, nil
}

// unmask shows the person's full address once, after recording an unmasked event
// naming the reader. The page is the answer to the POST (not a redirect): no GET
// shows a full address.
func (p *Pages) unmask(c *fiber.Ctx) error {
	id := c.Params("id")
	sub, err := p.person(c, id)
	if sub == nil {
		return err
	}
	if sub.Email != "" {
		if err := p.store.RecordUnmasked(c.UserContext(), []string{id}, apiauth.Actor(c), "read"); err != nil {
			return err
		}
	}
	return p.renderPerson(c, personOpts{status: fiber.StatusOK, unmask: true})
}

// export downloads the person's export (GDPR art. 15 and 20) as JSON, or as CSV files
// in a zip (?format=csv), and records an exported event, as the API's export does.
func (p *Pages) export(c *fiber.Ctx) error {
	doc, err := p.store.ExportSubscriber(c.UserContext(), c.Params("id"), apiauth.Actor(c), p.history)
	if err != nil {
		if status, key, ok := domainError(err); ok {
			return p.renderPerson(c, personOpts{status: status, errKey: key})
		}
		return err
	}
	return adminapi.SendExport(c, doc)
}

func (p *Pages) restrict(on bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in := preferences.StatusChange{Subscriber: c.Params("id"), Actor: apiauth.Actor(c)}
		var err error
		done := "restricted"
		if on {
			err = p.store.Restrict(c.UserContext(), in)
		} else {
			err = p.store.Unrestrict(c.UserContext(), in)
			done = "unrestricted"
		}
		if err != nil {
			if status, key, ok := domainError(err); ok {
				return p.renderPerson(c, personOpts{status: status, errKey: key})
			}
			return err
		}
		return redirect(c, "/admin/subscribers/"+in.Subscriber, done)
	}
}

// rectify corrects the person's name and, when one is typed, address (GDPR art. 16),
// validated as the API validates them. A new address must be confirmed by double
// opt-in before campaigns use it.
func (p *Pages) rectify(c *fiber.Ctx) error {
	id := c.Params("id")
	name := strings.TrimSpace(c.FormValue("name"))
	typed := strings.TrimSpace(c.FormValue("email"))
	r := preferences.Rectification{Subscriber: id, Name: &name, Actor: apiauth.Actor(c)}
	bad := map[string]string{}
	if len(name) > 200 || strings.ContainsAny(name, "\r\n\x00") {
		bad["name"] = "subs.err.name"
	}
	if typed != "" {
		addr, key, err := address.Normalise(typed)
		if err != nil {
			bad["email"] = "subs.err.email_invalid"
		}
		r.Email, r.EmailKey = addr, key
	}
	again := personOpts{name: &name, newEmail: typed, bad: bad}
	if len(bad) > 0 {
		again.status = fiber.StatusUnprocessableEntity
		return p.renderPerson(c, again)
	}
	fields, err := p.store.Rectify(c.UserContext(), r, p.enqueue)
	if err != nil {
		status, key, ok := domainError(err)
		if !ok {
			return err
		}
		again.status, again.errKey = status, key
		if errors.Is(err, preferences.ErrEmailTaken) {
			again.bad = map[string]string{"email": key}
		}
		return p.renderPerson(c, again)
	}
	done := "rectified"
	switch {
	case len(fields) == 0:
		done = "unchanged"
	case slices.Contains(fields, "email"):
		done = "rectified_email"
	}
	return redirect(c, "/admin/subscribers/"+id, done)
}

// eraseWord is what a person types to confirm an erasure (or the masked address).
// person reads the person the page is about; nil with the answer's error when
// there is none (a 404 page) or the read failed.
func (p *Pages) person(c *fiber.Ctx, id string) (*preferences.Subscriber, error) {
	sub, err := p.store.Subscriber(c.UserContext(), id)
	if errors.Is(err, preferences.ErrNotFound) {
		return nil, p.problem(c, fiber.StatusNotFound, "subscribers", "subs.err.not_found")
	}
	if err != nil {
		return nil, err
	}
	return sub, nil
}

const eraseWord = "ERASE"

// erase erases the person once the erasure is confirmed by typing ERASE or their
// masked address, then shows the receipt.
func (p *Pages) erase(c *fiber.Ctx) error {
	id := c.Params("id")
	sub, err := p.person(c, id)
	if sub == nil {
		return err
	}
	typed := strings.TrimSpace(c.FormValue("confirm"))
	if typed != eraseWord && (sub.Email == "" || !strings.EqualFold(typed, address.Mask(sub.Email))) {
		return p.renderPerson(c, personOpts{status: fiber.StatusUnprocessableEntity, confirm: typed,
			bad: map[string]string{"confirm": "subs.err.erase_confirm"}})
	}
	rc, err := p.eraser.Erase(c.UserContext(), id, apiauth.Actor(c))
	if err != nil {
		status, key, ok := domainError(err)
		if !ok {
			return err
		}
		o := personOpts{status: status, errKey: key}
		if errors.Is(err, preferences.ErrErasureIncomplete) {
			o.receipt = &rc
		}
		return p.renderPerson(c, o)
	}
	return redirect(c, "/admin/subscribers/"+id, "erased")
}
