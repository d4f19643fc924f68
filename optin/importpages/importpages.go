// Package importpages is the Imports page of the admin app (/admin/imports), for
// admins and marketers: upload a CSV into a list, then read what became of it, the
// rejected lines each with its reason.
//
// It imports with the API's function (optin.Import) under the same rules: the same
// columns and proof of consent, confirmations sent to rows without proof only when
// asked, and the same answer: a marketer's result is optin.ImportResult.Uniform, so
// the page never tells whether an address was already known, confirmed, withdrawn
// or erased; an admin's lists the rows the consent rules refused.
//
// An import runs in the background, bounded (MaxRunning at once, MaxUpload bytes
// each, and the server's body limit; the file is kept in memory, never written in
// the clear to a disk): the upload answers at once
// with the import's page, which shows its progress until it ends. With JavaScript,
// htmx polls a progress fragment every second and loads the result when the import
// ends; without, a reload link does the same. Only the person who started an import
// sees it.
package importpages

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/optin"
	"consentmail/preferences"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/webauth"
	"consentmail/templates"
)

//go:embed *.html en.json fr.json
var files embed.FS

// Bounds of the imports a process runs.
const (
	// MaxUpload is the largest file accepted (the server's body limit may be lower).
	MaxUpload = 64 << 20
	// MaxRunning is how many imports run at once; more are refused until one ends.
	MaxRunning = 2
	// MaxKept is how many imports (running or ended) the process remembers; the
	// oldest ended ones are forgotten first.
	MaxKept = 50
	// KeptFor is how long an ended import's result stays readable.
	KeptFor = 24 * time.Hour
	// RejectedPerPage is how many rejected lines one page of the result lists.
	RejectedPerPage = 200
)

// Pages serves the Imports pages and runs their imports.
type Pages struct {
	store *preferences.Store
	q     optin.TxEnqueuer
	views *templates.AdminViews
	site  templates.Site
	now   func() time.Time

	ctx    context.Context // ends the imports still running at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs []*job // oldest first
}

// New returns the Imports pages importing into store; q queues the confirmations of
// rows without proof when the person asks for them.
func New(store *preferences.Store, q optin.TxEnqueuer, r *templates.Renderer, site templates.Site, now func() time.Time) (*Pages, error) {
	views, err := r.AdminViews(files)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pages{store: store, q: q, views: views, site: site, now: now, ctx: ctx, cancel: cancel}, nil
}

// Close stops the imports still running (each keeps the batches it wrote) and waits
// for them to end.
func (h *Pages) Close() {
	h.cancel()
	h.wg.Wait()
}

// Routes mounts the pages on r, the /admin group: admins and marketers only, as the
// import API.
func (h *Pages) Routes(r fiber.Router, require func(roles ...string) fiber.Handler) {
	may := require(preferences.RoleMarketer)
	r.Get("/imports", may, h.form)
	r.Post("/imports", may, h.start)
	r.Get("/imports/:id", may, h.show)
	r.Get("/imports/:id/progress", may, h.progress)
}

// job is one import.
type job struct {
	id, owner      string
	list, listName string
	file           string
	size           int64
	sendOptin      bool
	started        time.Time
	read           atomic.Int64 // bytes of the file read so far

	// Set once, under Pages.mu, when the import ends.
	ended  time.Time
	result optin.ImportResult
	err    string // why the file could not be imported; empty when it was
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// formView is the upload form's data.
type formView struct {
	Lists     []preferences.List
	List      string // the list chosen
	SendOptin bool
	Errors    map[string]string // by field: list, file
	Recent    []jobView
}

func (h *Pages) t(lang, key string, args ...any) string { return h.views.T(lang, key, args...) }

func (h *Pages) form(c *fiber.Ctx) error {
	return h.renderForm(c, fiber.StatusOK, formView{SendOptin: true})
}

func (h *Pages) renderForm(c *fiber.Ctx, status int, v formView) error {
	lists, _, err := h.store.Lists(c.UserContext(), "", 1000)
	if err != nil {
		return err
	}
	v.Lists = lists
	s, _ := webauth.Current(c)
	h.mu.Lock()
	for i := len(h.jobs) - 1; i >= 0 && len(v.Recent) < 10; i-- {
		if j := h.jobs[i]; j.owner == s.UserID {
			v.Recent = append(v.Recent, h.viewOf(j, 0))
		}
	}
	h.mu.Unlock()
	p := webauth.Page(c, h.site, "imports", "", v)
	p.Title = h.t(p.Lang, "imports.title")
	if len(v.Errors) > 0 {
		p.Error = h.t(p.Lang, "imports.error.summary")
	}
	return webauth.Render(c, status, h.views, "imports", p)
}

func (h *Pages) start(c *fiber.Ctx) error {
	ctx := c.UserContext()
	s, _ := webauth.Current(c)
	lang := webauth.Page(c, h.site, "", "", nil).Lang
	v := formView{List: c.FormValue("list"), SendOptin: c.FormValue("send_optin") == "true", Errors: map[string]string{}}
	list, err := h.store.List(ctx, v.List)
	switch {
	case v.List == "" || errors.Is(err, preferences.ErrNotFound):
		v.Errors["list"] = h.t(lang, "imports.error.list")
	case err != nil:
		return err
	}
	fh, err := c.FormFile("file")
	switch {
	case err != nil:
		v.Errors["file"] = h.t(lang, "imports.error.file")
	case fh.Size == 0:
		v.Errors["file"] = h.t(lang, "imports.error.empty")
	case fh.Size > MaxUpload:
		v.Errors["file"] = h.t(lang, "imports.error.too_large", MaxUpload>>20)
	}
	if len(v.Errors) > 0 {
		return h.renderForm(c, fiber.StatusUnprocessableEntity, v)
	}
	if h.running() >= MaxRunning {
		v.Errors["file"] = h.t(lang, "imports.error.busy")
		return h.renderForm(c, fiber.StatusServiceUnavailable, v)
	}
	// The upload's memory (or temporary file) is the request's: the import, which
	// outlives it, reads its own copy, kept in memory (a CSV of addresses is never
	// written in the clear to a disk; the server's body limit bounds it).
	data, err := readUpload(fh)
	if err != nil {
		return fmt.Errorf("import upload: %w", err)
	}
	j := &job{id: randomID(), owner: s.UserID, list: list.ID, listName: list.Name, file: filepath.Base(fh.Filename),
		size: fh.Size, sendOptin: v.SendOptin, started: h.now()}
	h.add(j)
	actor, role := apiauth.Actor(c), apiauth.Caller(c).Role
	h.wg.Add(1)
	go h.run(j, data, actor, role)
	return c.Redirect("/admin/imports/"+j.id, fiber.StatusSeeOther)
}

func readUpload(fh *multipart.FileHeader) ([]byte, error) {
	src, err := fh.Open()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return io.ReadAll(io.LimitReader(src, MaxUpload))
}

// run imports the uploaded file as the API does.
func (h *Pages) run(j *job, data []byte, actor, role string) {
	defer h.wg.Done()
	var enqueue preferences.EnqueueTx
	if j.sendOptin {
		enqueue = optin.OptinEnqueuer(h.q)
	}
	res, err := optin.Import(h.ctx, h.store, j.list, actor, countingReader{bytes.NewReader(data), &j.read}, enqueue)
	if !preferences.SeesPersonalData(role) {
		res = res.Uniform() // a marketer: no answer may tell whether an address is known
	}
	msg := ""
	var he *optin.HeaderError
	switch {
	case errors.As(err, &he):
		msg = he.Error()
	case errors.Is(err, preferences.ErrNotFound):
		msg = "list"
	case err != nil:
		msg = "failed"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	j.result, j.err, j.ended = res, msg, h.now()
}

func (h *Pages) running() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, j := range h.jobs {
		if j.ended.IsZero() {
			n++
		}
	}
	return n
}

// add remembers j, forgetting the oldest ended imports beyond MaxKept or KeptFor.
func (h *Pages) add(j *job) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	h.jobs = slices.DeleteFunc(h.jobs, func(o *job) bool { return !o.ended.IsZero() && now.Sub(o.ended) > KeptFor })
	for i := 0; len(h.jobs) >= MaxKept && i < len(h.jobs); {
		if !h.jobs[i].ended.IsZero() {
			h.jobs = slices.Delete(h.jobs, i, i+1)
			continue
		}
		i++
	}
	h.jobs = append(h.jobs, j)
}

// find returns the import id of the signed-in person.
func (h *Pages) find(c *fiber.Ctx) (*job, error) {
	s, _ := webauth.Current(c)
	id := c.Params("id")
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, j := range h.jobs {
		if j.id == id && j.owner == s.UserID {
			return j, nil
		}
	}
	return nil, fiber.ErrNotFound
}

// jobView is an import as its page shows it.
type jobView struct {
	ID, List, File string
	Size           int64
	SendOptin      bool
	Started, Ended time.Time
	Done           bool
	Percent        int64 // of the file read, while it runs
	Err            string
	Imported       int64
	Pending        int64
	Rejected       []rejectedView // this page's
	RejectedTotal  int64
	Truncated      bool // more rows were rejected than a result lists
	Page, Pages    int
	Prev, Next     int // pages of the rejected lines; 0: none
}

type rejectedView struct {
	Line   int
	Reason string
}

// viewOf reads j (callers hold h.mu); page is the page of rejected lines, from 1.
func (h *Pages) viewOf(j *job, page int) jobView {
	v := jobView{ID: j.id, List: j.listName, File: j.file, Size: j.size, SendOptin: j.sendOptin, Started: j.started,
		Ended: j.ended, Done: !j.ended.IsZero(), Err: j.err}
	if !v.Done {
		if j.size > 0 {
			v.Percent = min(j.read.Load()*100/j.size, 99)
		}
		return v
	}
	r := j.result
	v.Imported, v.Pending, v.RejectedTotal = int64(r.Imported), int64(r.Pending), int64(len(r.Rejected))
	v.Truncated = len(r.Rejected) >= optin.MaxRejectedReported
	v.Pages = max((len(r.Rejected)+RejectedPerPage-1)/RejectedPerPage, 1)
	v.Page = min(max(page, 1), v.Pages)
	if v.Page > 1 {
		v.Prev = v.Page - 1
	}
	if v.Page < v.Pages {
		v.Next = v.Page + 1
	}
	from := (v.Page - 1) * RejectedPerPage
	for _, e := range r.Rejected[from:min(from+RejectedPerPage, len(r.Rejected))] {
		v.Rejected = append(v.Rejected, rejectedView{Line: e.Line, Reason: e.Error})
	}
	return v
}

// reasonKeys are the catalog keys of the importer's reasons (the API's words, in
// English); a reason not here is shown as the API gives it.
var reasonKeys = map[string]string{
	"email: not an email address":                                 "imports.reason.email",
	"locale: not a language tag such as en or fr":                 "imports.reason.locale",
	"consented_at: not a date such as 2024-05-01T10:00:00Z":       "imports.reason.date",
	"consented_at: in the future":                                 "imports.reason.future",
	"proof of consent needs both consented_at and consent_source": "imports.reason.half_proof",
	"consent_ip: not an IP address":                               "imports.reason.ip",
	preferences.RejectSuppressed:                                  "imports.reason.suppressed",
	preferences.RejectWithdrawn:                                   "imports.reason.withdrawn",
	preferences.RejectRestricted:                                  "imports.reason.restricted",
}

func (h *Pages) reason(lang, r string) string {
	if key, ok := reasonKeys[r]; ok {
		return h.t(lang, key)
	}
	if rest, ok := strings.CutPrefix(r, "not valid CSV: "); ok {
		return h.t(lang, "imports.reason.csv", rest)
	}
	return r
}

func (h *Pages) show(c *fiber.Ctx) error {
	j, err := h.find(c)
	if err != nil {
		return err
	}
	page, _ := strconv.Atoi(c.Query("page"))
	h.mu.Lock()
	v := h.viewOf(j, page)
	h.mu.Unlock()
	p := webauth.Page(c, h.site, "imports", "", nil)
	for i := range v.Rejected {
		v.Rejected[i].Reason = h.reason(p.Lang, v.Rejected[i].Reason)
	}
	switch v.Err {
	case "":
	case "list":
		v.Err = h.t(p.Lang, "imports.error.list_gone")
	case "failed":
		v.Err = h.t(p.Lang, "imports.error.failed")
	default: // the header row's fault, in the API's words
		v.Err = h.t(p.Lang, "imports.error.header", v.Err)
	}
	p.Data = v
	if v.Done {
		p.Title = h.t(p.Lang, "imports.result.title", v.File)
	} else {
		p.Title = h.t(p.Lang, "imports.running.title", v.File)
	}
	return webauth.Render(c, fiber.StatusOK, h.views, "import", p)
}

// progress is the fragment htmx polls: the progress while the import runs, and, once
// it ended, the instruction to load the result.
func (h *Pages) progress(c *fiber.Ctx) error {
	j, err := h.find(c)
	if err != nil {
		return err
	}
	h.mu.Lock()
	v := h.viewOf(j, 1)
	h.mu.Unlock()
	if v.Done {
		c.Set("HX-Redirect", "/admin/imports/"+v.ID)
	}
	p := webauth.Page(c, h.site, "imports", "", v)
	return webauth.Render(c, fiber.StatusOK, h.views, "import_progress", p)
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
