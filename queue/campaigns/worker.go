package campaigns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"slices"
	"strings"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"

	"consentmail/mailer"
	"consentmail/mailer/inbound"
	"consentmail/mailer/webhooks"
	"consentmail/preferences"
	"consentmail/preferences/address"
	"consentmail/preferences/linktoken"
	"consentmail/queue"
	"consentmail/templates"
)

// Sender sends one message; *mailer.Sender is one.
type Sender interface {
	Send(ctx context.Context, m *mailer.Message) error
}

// WorkerConfig is what campaign mail carries besides the campaign.
type WorkerConfig struct {
	BaseURL       string // public base URL of unsubscribe, preference and tracking links
	PostalAddress string
	Company       string
	// Domain names the List-Id and Message-ID (CONSENTMAIL_BOUNCE_DOMAIN).
	Domain string
	// Visibility is the queue's visibility timeout: how long a claim on a recipient
	// lasts when the worker does not report back.
	Visibility time.Duration
	// MaxAttempts is the queue's maximum deliveries; on the last one, recipients still
	// failing temporarily are recorded as failed rather than lost with the job.
	MaxAttempts int
	// PauseRecheck is how long a job of a paused campaign waits before it looks again
	// (default 2 s).
	PauseRecheck time.Duration
	// BusyRecheck is how long a job waits before looking again at recipients claimed
	// by another delivery (default 5 s, at most Visibility): a dead worker's claims
	// end once its heartbeat has expired (RedisTracker), long before its visibility
	// timeout.
	BusyRecheck time.Duration
	// MaxGroups is how many send groups may be between their claim and their durable
	// record at once in this process (0: no bound): what a crash of this process can
	// make go twice, at most. The send rate is at most MaxGroups groups per claim,
	// send and record time, so it must cover the relay connections and the time of a
	// record (cmd sets two per connection).
	MaxGroups int
	// Refs signs the reference every message carries (header X-Consentmail-Ref),
	// by which bounces and complaints, from inbound SMTP or a relay's webhook, are
	// matched to their subscriber and campaign (nil: none).
	Refs *linktoken.Signer
	// Inbound: inbound SMTP is on, so each message also has its own return path
	// bounce+TOKEN@Domain and a mailto List-Unsubscribe unsubscribe+TOKEN@Domain.
	Inbound bool
	// RelayRefs: the relays' webhooks are configured, so the reference also goes
	// where SendGrid (a unique arg) and Postmark (metadata) echo it back.
	RelayRefs bool
}

// Worker sends campaign jobs (queue handler for KindCampaign). It needs no store: the
// job carries the recipients, the Tracker the campaign, its status and the claims.
type Worker struct {
	tracker  Tracker
	q        queue.Queue
	sender   Sender
	codec    *JobCodec
	unsub    *linktoken.Signer
	track    *linktoken.Signer
	cfg      WorkerConfig
	now      func() time.Time
	log      *slog.Logger
	recorder *recorder
	slots    chan struct{} // one per send group under way; nil: no bound

	mu       sync.Mutex
	compiled map[string]*compiled
}

// compiled is a campaign ready to render.
type compiled struct {
	def     *Definition
	tpl     *templates.Campaign
	listIDs map[string]string // List-Id header of each list, read-only once made
	// feedbackIDs is the Feedback-ID header of each list (campaign:list:consentmail:
	// domain), read-only once made: Gmail's feedback loop groups complaints by it.
	feedbackIDs map[string]string
}

// maxCompiled bounds the campaigns whose parsed templates a worker keeps.
const maxCompiled = 64

// NewWorker returns a worker; signer must be keyed for unsubscribe links (the same
// key as the unsubscribe pages), tracking for tracking links (the same key as
// TrackingRoutes).
func NewWorker(tracker Tracker, q queue.Queue, sender Sender, codec *JobCodec, signer, tracking *linktoken.Signer,
	cfg WorkerConfig, now func() time.Time, log *slog.Logger) *Worker {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.PauseRecheck <= 0 {
		cfg.PauseRecheck = 2 * time.Second
	}
	if cfg.Visibility <= 0 {
		cfg.Visibility = time.Minute
	}
	if cfg.BusyRecheck <= 0 {
		cfg.BusyRecheck = 5 * time.Second
	}
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	w := &Worker{tracker: tracker, q: q, sender: sender, codec: codec, unsub: signer, track: tracking, cfg: cfg, now: now, log: log,
		recorder: newRecorder(tracker, log), compiled: map[string]*compiled{}}
	if cfg.MaxGroups > 0 {
		w.slots = make(chan struct{}, cfg.MaxGroups)
	}
	return w
}

// Handle sends one job, a send group at a time. Each group is claimed just before it
// is sent, which reads consent and the campaign's status anew: recipients whose
// consent was withdrawn since the job was queued, or during the previous group, are
// skipped; those already recorded (a redelivered job) are not sent again; a pause or
// cancel stops the job at the next group. At most WorkerConfig.MaxGroups groups of the
// process are between the relay's replies and their durable record at once, and a job
// is done (or parked, or retried) only once all its results are durable. A temporary failure (4xx, connection) retries the job; only
// the recipients not recorded are sent on the next delivery.
func (w *Worker) Handle(ctx context.Context, d queue.Delivery) error {
	j, err := w.codec.decode(d.Body)
	if err != nil {
		return queue.Permanent(err)
	}
	// A test is of a draft or a template, which may have changed since the last
	// test: it is compiled afresh.
	c, err := w.campaign(ctx, j.Campaign, len(j.Test) > 0)
	if errors.Is(err, ErrCampaignNotFound) {
		w.log.Warn("campaign job for an unknown campaign dropped", "campaign", j.Campaign)
		return nil
	}
	if err != nil {
		return err
	}
	if len(j.Test) > 0 {
		return w.sendTests(ctx, c, j.Test)
	}
	last := w.cfg.MaxAttempts > 0 && d.Attempts+1 >= w.cfg.MaxAttempts
	var temp error
	var busy []preferences.Recipient // claimed by another delivery: looked at again later
	todo := j.Recipients
	var ticket uint64 // the last outcome this job recorded
	durable := func() error {
		if err := w.recorder.wait(ctx, ticket); err != nil {
			return fmt.Errorf("record results: %w", err)
		}
		return nil
	}
	for len(todo) > 0 {
		group := todo[:min(len(todo), sendGroup)]
		g, err := w.sendClaimed(ctx, c, group, last)
		if err != nil {
			return errors.Join(err, durable())
		}
		ticket = max(ticket, g.ticket)
		switch g.stopped {
		case StatusPaused:
			// The rest waits as a job of its own; this one is done with.
			if err := durable(); err != nil {
				return err
			}
			return w.park(ctx, d, append(slices.Clone(todo), busy...), w.cfg.PauseRecheck)
		case StatusCancelled:
			return durable() // cancelled, finished or gone: nothing left to count
		}
		todo = todo[len(group):]
		if len(g.late) > 0 {
			todo = append(g.late, todo...)
		}
		busy = append(busy, g.busy...)
		if g.temp != nil {
			temp = g.temp
		}
	}
	if err := durable(); err != nil {
		return err
	}
	switch {
	case temp != nil:
		return temp
	case len(busy) > 0:
		// Another delivery holds them: the worker of a job redelivered too early, or
		// one that died. Look again once its claim has run out.
		return w.park(ctx, d, busy, w.busyRecheck())
	}
	if err := w.tracker.JobDone(ctx, j.Campaign, j.Seq); err != nil {
		return fmt.Errorf("record job done: %w", err)
	}
	return nil
}

// groupResult is what became of one send group.
type groupResult struct {
	stopped string                  // StatusPaused or StatusCancelled: nothing was claimed
	ticket  uint64                  // the recorder's ticket of the group's last outcome (0: none)
	busy    []preferences.Recipient // claimed by another delivery
	late    []preferences.Recipient // claimed, then released unsent: their claim grew too old
	temp    error                   // a temporary failure; those recipients were released
}

// sendClaimed claims a group (reading consent and the campaign's status), sends to
// those it may and returns once their results are durable. It holds one of the
// worker's send slots from sending to recording, so that at most WorkerConfig.MaxGroups
// groups are between the relay's replies and their record at once: the most a crash
// can make go twice.
func (w *Worker) sendClaimed(ctx context.Context, c *compiled, group []preferences.Recipient, last bool) (groupResult, error) {
	var g groupResult
	claimed := w.now()
	// The claim may fill in personal data (EngineConfig.IDsOnly); what goes back to the
	// queue goes as it came.
	queued := slices.Clone(group)
	verdicts, err := w.tracker.Claim(ctx, c.def.ID, group, claimed.Add(w.cfg.Visibility))
	if err != nil {
		return g, fmt.Errorf("claim recipients: %w", err)
	}
	if len(verdicts) > 0 {
		switch verdicts[0] {
		case Paused:
			g.stopped = StatusPaused
			return g, nil
		case Cancelled:
			g.stopped = StatusCancelled
			return g, nil
		}
	}
	var sendable []preferences.Recipient
	var from []int // the index in group of each of sendable
	for i, r := range group {
		switch verdicts[i] {
		case Busy:
			g.busy = append(g.busy, queued[i])
		case Send:
			sendable = append(sendable, r)
			from = append(from, i)
		}
	}
	if len(sendable) == 0 {
		return g, nil
	}
	// Only sending and recording take a slot: a crash can make go twice only what the
	// relay accepted and was not yet recorded. Claims and consent reads of other groups
	// go on meanwhile; a group that waits here past sendBy is claimed again.
	if w.slots != nil {
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return g, ctx.Err() // the claims end with their deadline, or the process
		}
	}
	var ticket uint64
	for i, err := range w.sendGroup(ctx, c, sendable, claimed.Add(sendBy)) {
		r := &sendable[i]
		res := ResultSent
		o := Outcome{Subscriber: r.ID, Domain: DomainBucket(r.Email)}
		rej, hard := mailer.HardBounce(err)
		switch {
		case err == nil:
		case errors.Is(err, errTooLate):
			res = ResultNone // claimed again, consent read again
			g.late = append(g.late, queued[from[i]])
		case mailer.IsTemporary(err) && !last:
			res, g.temp = ResultNone, err // claim released: the retry sends it
		case hard:
			// The address is dead: the store's owner blocks the subscriber (HardBounces).
			// Relays often quote the address in their reply, which waits for the store
			// in a queue that is not sealed (campaigns.hard, or Redis).
			res, o.Status, o.Reply = ResultBounced, rej.Enhanced, address.Redact(rej.Reply)
			w.log.Info("campaign message bounced", "campaign", c.def.ID, "subscriber", r.ID, "status", rej.Enhanced)
		default:
			res = ResultFailed
			w.log.Info("campaign message failed", "campaign", c.def.ID, "subscriber", r.ID,
				"err", address.Redact(err.Error()))
		}
		o.Result = res
		ticket = w.recorder.add(c.def.ID, o)
	}
	// The slot is given back once the group's results are durable; the job goes on
	// with its next group meanwhile and waits for its last ticket before it is done.
	g.ticket = ticket
	if w.slots != nil {
		go func() {
			_ = w.recorder.wait(ctx, ticket)
			<-w.slots
		}()
	}
	return g, nil
}

// errTooLate reports a message not sent because its claim had grown older than
// sendBy before the group could be handed to the relay.
var errTooLate = errors.New("campaigns: claim too old to start sending")

// busyRecheck is how long a job waits before looking again at recipients another
// delivery holds: a claim ends when its worker records it, when its visibility
// timeout passes, or (RedisTracker) soon after its worker stops beating.
func (w *Worker) busyRecheck() time.Duration {
	return min(w.cfg.Visibility, w.cfg.BusyRecheck)
}

// park queues the recipients of job d again as a job of their own (same campaign and
// number), to be looked at after wait; d itself is then done with.
func (w *Worker) park(ctx context.Context, d queue.Delivery, rs []preferences.Recipient, wait time.Duration) error {
	j, err := w.codec.decode(d.Body)
	if err != nil {
		return queue.Permanent(err)
	}
	m := d.Message
	if m.Body, err = w.codec.encode(&job{Campaign: j.Campaign, Seq: j.Seq, Recipients: rs}); err != nil {
		return err
	}
	m.ID, m.Attempts, m.LastError = "", 0, ""
	m.NotBefore = w.now().Add(wait)
	if err := w.q.Enqueue(ctx, m); err != nil {
		return fmt.Errorf("park campaign job: %w", err)
	}
	return nil
}

// campaign returns the compiled campaign id. Definitions do not change once a
// campaign has started (only the status does, which Claim reads each time); fresh
// reads and compiles the definition anew, for drafts, which do change.
func (w *Worker) campaign(ctx context.Context, id string, fresh bool) (*compiled, error) {
	w.mu.Lock()
	c := w.compiled[id]
	w.mu.Unlock()
	if c != nil && !fresh {
		return c, nil
	}
	def, err := w.tracker.Definition(ctx, id)
	if err != nil {
		return nil, err
	}
	tpl, err := templates.ParseCampaign(def.Subject, def.HTML, def.Text)
	if err != nil {
		// Validated when the campaign was created: this is not the recipient's fault.
		return nil, queue.Permanent(fmt.Errorf("campaign %s: %w", id, err))
	}
	c = &compiled{def: def, tpl: tpl, listIDs: map[string]string{}, feedbackIDs: map[string]string{}}
	for _, l := range def.Lists {
		c.listIDs[l] = w.listID(l, def.ListNames[l])
		c.feedbackIDs[l] = def.ID + ":" + l + ":consentmail:" + w.cfg.Domain
	}
	if fresh {
		return c, nil // never kept: a draft's definition may change before it starts
	}
	w.mu.Lock()
	if len(w.compiled) >= maxCompiled {
		for k := range w.compiled {
			delete(w.compiled, k)
			break
		}
	}
	w.compiled[id] = c
	w.mu.Unlock()
	return c, nil
}

// sendGroup is how many recipients a worker hands to the relay at once
// (one round trip with a relay that offers pipelining and chunking); each group is
// claimed, which reads consent and the campaign's status, just before it is sent.
const sendGroup = 10

// BatchSender sends several messages at once, reporting each one's result, and
// asks for each message just before it encodes it; *mailer.Sender is one.
type BatchSender interface {
	SendBatchFunc(ctx context.Context, n int, next func(i int) (*mailer.Message, error)) []error
}

// sendGroup sends the campaign to rs, in one batch when the sender can, and returns
// each recipient's result. Each message is rendered just before it is encoded for the
// relay, so that a group under way holds one rendered message, not one per
// recipient: what a sender holds does not grow with its send groups. A message
// whose turn comes after sendBy is not rendered or sent: its result is errTooLate.
func (w *Worker) sendGroup(ctx context.Context, c *compiled, rs []preferences.Recipient, sendBy time.Time) []error {
	render := func(i int) (*mailer.Message, error) {
		if w.now().After(sendBy) {
			return nil, errTooLate
		}
		return w.message(c, &rs[i])
	}
	if bs, ok := w.sender.(BatchSender); ok && len(rs) > 1 {
		return bs.SendBatchFunc(ctx, len(rs), render)
	}
	errs := make([]error, len(rs))
	for i := range rs {
		m, err := render(i)
		if err == nil {
			err = w.sender.Send(ctx, m)
		}
		errs[i] = err
	}
	return errs
}

// message renders the campaign for one recipient. Tracking (an open pixel, click
// links in the HTML part) is added only when the campaign asks for it and the
// recipient consented to it when the job was queued.
func (w *Worker) message(c *compiled, r *preferences.Recipient) (*mailer.Message, error) {
	now := w.now()
	token := linktoken.Unsubscribe(w.unsub, r.ID, c.def.Lists, c.def.ID, now)
	unsubURL := w.cfg.BaseURL + "/u/" + token
	prefsURL := w.cfg.BaseURL + "/p/" + linktoken.Preferences(w.unsub, r.ID, now)
	track := c.def.Track && r.Tracking
	pixelURL := ""
	if track {
		pixelURL = w.cfg.BaseURL + "/t/o/" + OpenToken(w.track, c.def.ID, r.ID, now)
	}
	sub := templates.SubscriberData{Name: r.Name, Email: r.Email, Locale: r.Locale}
	if len(r.Attributes) > 0 {
		if err := gojson.Unmarshal(r.Attributes, &sub.Attributes); err != nil {
			return nil, mailerPermanent(fmt.Errorf("attributes: %w", err))
		}
	}
	out, err := c.tpl.Render(templates.CampaignData{Subscriber: sub, Campaign: templates.CampaignInfo{ID: c.def.ID, Name: c.def.Name},
		UnsubscribeURL: unsubURL, PreferencesURL: prefsURL},
		templates.Footer{UnsubscribeURL: unsubURL, PreferencesURL: prefsURL, PostalAddress: w.cfg.PostalAddress, Company: w.cfg.Company,
			TrackingPixelURL: pixelURL})
	if err != nil {
		return nil, mailerPermanent(err)
	}
	if track {
		out.HTML = w.trackLinks(out.HTML, c.def.ID, r.ID, now)
	}
	list := c.def.Lists[0]
	if len(r.Lists) > 0 {
		list = r.Lists[0] // one of the campaign's lists: its List-Id was made with the campaign
	}
	m := &mailer.Message{From: c.def.From, To: r.Email, ToName: r.Name, Subject: out.Subject, HTML: out.HTML, Text: out.Text,
		MessageID: w.messageID(c.def.ID),
		Headers:   make(map[string]string, 8)} // these five, and addInbound's three
	m.Headers["List-Unsubscribe"] = "<" + unsubURL + ">"
	m.Headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
	m.Headers["List-Id"] = c.listIDs[list]
	m.Headers["Precedence"] = "bulk"
	m.Headers["Feedback-ID"] = c.feedbackIDs[list]
	w.addInbound(m, c.def.ID, r.ID, unsubURL)
	return m, nil
}

// addInbound gives m what bounces and complaints come back with for this subscriber
// and campaign: the reference header, echoed by relays' webhooks where they need it
// (SendGrid's unique args, Postmark's metadata) and, with inbound SMTP, the return path
// bounces go to (VERP) and the mailto beside the https List-Unsubscribe. For an id no
// token can carry, m keeps the From as return path and only the https link.
func (w *Worker) addInbound(m *mailer.Message, campaign, subscriber, unsubURL string) {
	if w.cfg.Refs == nil {
		return
	}
	ref, err := linktoken.Bounce(w.cfg.Refs, subscriber, campaign)
	if err != nil {
		return
	}
	m.Headers[inbound.FeedbackHeader] = ref
	if w.cfg.RelayRefs {
		m.Headers["X-SMTPAPI"] = `{"unique_args":{"` + webhooks.RefKey + `":"` + ref + `"}}`
		m.Headers["X-PM-Metadata-"+webhooks.RefKey] = ref
	}
	if !w.cfg.Inbound {
		return
	}
	unsub, err := linktoken.MailUnsubscribe(w.cfg.Refs, subscriber, campaign)
	if err != nil {
		return
	}
	m.ReturnPath = "bounce+" + ref + "@" + w.cfg.Domain
	m.Headers["List-Unsubscribe"] = "<mailto:unsubscribe+" + unsub + "@" + w.cfg.Domain + ">, <" + unsubURL + ">"
}

// mailerPermanent marks an error of ours about one recipient's data as permanent.
func mailerPermanent(err error) error { return &mailer.SendError{Err: err} }

func (w *Worker) messageID(campaign string) string {
	var b [10]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return "<" + hex.EncodeToString(b[:]) + "." + campaign + "@" + w.cfg.Domain + ">"
}

// listID is the RFC 2919 List-Id of a list: its name as phrase, then
// <list-id.domain>.
func (w *Worker) listID(list, name string) string {
	id := "<" + list + "." + w.cfg.Domain + ">"
	name = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, name)
	switch {
	case name == "":
		return id
	case needsEncoding(name):
		return mime.QEncoding.Encode("utf-8", name) + " " + id
	}
	return quotePhrase(name) + " " + id
}

func needsEncoding(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return true
		}
	}
	return false
}

var phraseEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func quotePhrase(s string) string { return `"` + phraseEscaper.Replace(s) + `"` }

// sendTests sends the campaign to test addresses with sample data; nothing is
// recorded and the links lead nowhere.
func (w *Worker) sendTests(ctx context.Context, c *compiled, emails []string) error {
	for _, e := range emails {
		unsubURL, prefsURL := w.cfg.BaseURL+"/u/test", w.cfg.BaseURL+"/p/test"
		out, err := c.tpl.Render(templates.CampaignData{
			Subscriber:     templates.SubscriberData{Name: sampleSubscriber.Name, Email: e, Locale: "en", Attributes: map[string]any{"city": "Lyon"}},
			Campaign:       templates.CampaignInfo{ID: c.def.ID, Name: c.def.Name},
			UnsubscribeURL: unsubURL, PreferencesURL: prefsURL},
			templates.Footer{PostalAddress: w.cfg.PostalAddress, Company: w.cfg.Company})
		if err != nil {
			return queue.Permanent(err)
		}
		m := &mailer.Message{From: c.def.From, To: e, Subject: "[Test] " + out.Subject, HTML: out.HTML, Text: out.Text,
			MessageID: w.messageID(c.def.ID)}
		if err := w.sender.Send(ctx, m); err != nil {
			if mailer.IsTemporary(err) {
				return err
			}
			w.log.Info("test message failed", "campaign", c.def.ID, "err", address.Redact(err.Error()))
		}
	}
	return nil
}

// recorder writes outcomes to the tracker as soon as they are known, all those that
// arrive while a write is under way going together into the next one: the window in
// which a crash can make a sent message be sent again is one write, not one job.
type recorder struct {
	t   Tracker
	log *slog.Logger

	mu       sync.Mutex
	pending  map[string][]Outcome
	added    uint64
	flushed  uint64
	flushing bool
	changed  chan struct{}
	err      error
}

func newRecorder(t Tracker, log *slog.Logger) *recorder {
	return &recorder{t: t, log: log, pending: map[string][]Outcome{}, changed: make(chan struct{})}
}

// add queues an outcome for writing and returns its ticket for wait.
func (r *recorder) add(campaign string, o Outcome) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending[campaign] = append(r.pending[campaign], o)
	r.added++
	if !r.flushing {
		r.flushing = true
		go r.loop()
	}
	return r.added
}

// wait returns once the outcome of ticket (and all before it) is written.
func (r *recorder) wait(ctx context.Context, ticket uint64) error {
	for {
		r.mu.Lock()
		if r.flushed >= ticket {
			r.mu.Unlock()
			return nil
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// loop writes until nothing is pending. A failed write is retried: outcomes are
// never dropped, and jobs waiting for them wait (their own context bounds that).
func (r *recorder) loop() {
	backoff := 50 * time.Millisecond
	for {
		r.mu.Lock()
		if len(r.pending) == 0 {
			r.flushing = false
			r.mu.Unlock()
			return
		}
		batch, upto := r.pending, r.added
		r.pending = map[string][]Outcome{}
		r.mu.Unlock()

		var failed map[string][]Outcome
		for campaign, os := range batch {
			if err := r.t.Record(context.Background(), campaign, os); err != nil {
				r.log.Error("recording campaign results failed; retrying", "campaign", campaign, "results", len(os), "err", err)
				if failed == nil {
					failed = map[string][]Outcome{}
				}
				failed[campaign] = os
			}
		}
		r.mu.Lock()
		if failed == nil {
			r.flushed = upto
			close(r.changed)
			r.changed = make(chan struct{})
			backoff = 50 * time.Millisecond
		} else {
			for c, os := range failed {
				r.pending[c] = append(os, r.pending[c]...)
			}
		}
		r.mu.Unlock()
		if failed != nil {
			time.Sleep(backoff)
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}
