package campaigns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/queue"
	"consentmail/templates"
)

// Book is what the engine reads of the consent book, and the activity it writes back;
// *preferences.Store is one.
type Book interface {
	List(ctx context.Context, id string) (preferences.List, error)
	Audience(ctx context.Context, lists []string, cur preferences.AudienceCursor, max int, data bool) ([]preferences.Recipient, preferences.AudienceCursor, bool, error)
	CountAudience(ctx context.Context, lists []string) (int64, error)
	// TouchActivity records that the subscribers opened or clicked (an open or a click
	// is activity for the retention policy).
	TouchActivity(ctx context.Context, subscribers []string) error
	// Subscriber returns a subscriber; the engine reads their address's domain.
	Subscriber(ctx context.Context, id string) (*preferences.Subscriber, error)
	// CountExclusions counts who of the lists is left out of a campaign, and why
	// (Stats.Excluded), by preferences.Exclusion's reasons.
	CountExclusions(ctx context.Context, lists []string) (map[string]int64, error)
}

// EngineConfig tunes the engine; zero fields take the defaults.
type EngineConfig struct {
	// DefaultFrom is the From of campaigns whose lists name none (CONSENTMAIL_FROM).
	DefaultFrom string
	// CheckFrom, when set, refuses a campaign whose From mail cannot be sent from.
	CheckFrom FromCheck
	// BatchSize is the number of recipients per job (default 100). With a slow global
	// send rate, keep jobs short enough to be sent within the visibility timeout.
	BatchSize int
	// Window bounds the recipients queued and not yet settled, per campaign (default
	// 20,000): the queue holds a moving window of the audience, never all of it.
	Window int
	// Poll is how often the engine looks for due schedules and settled windows
	// (default 1 s for schedules, a fiftieth of it for windows).
	Poll time.Duration
	// PauseComplaintRate and PauseBounceRate are the rates above which a running
	// campaign pauses itself (defaults 0.003 and 0.05; a rate of 1 or more never
	// trips), once PauseMinSent messages (default 500) went to the relay since it
	// started, or since it was resumed after pausing itself.
	PauseComplaintRate float64
	PauseBounceRate    float64
	PauseMinSent       int64
	// IDsOnly queues each recipient as an id and lists only, for workers whose
	// tracker reads the book when it claims them (BoltTracker, with the embedded
	// queue): no job holds an address, a name or attributes, so none lingers in the
	// queue or in the freed pages of the data file after an erasure, and a message
	// goes to the address and with the tracking consent the book holds when it is sent.
	IDsOnly bool
}

func (c *EngineConfig) fill() {
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.Window <= 0 {
		c.Window = 20000
	}
	c.Window = max(c.Window, c.BatchSize)
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.PauseComplaintRate <= 0 {
		c.PauseComplaintRate = 0.003
	}
	if c.PauseBounceRate <= 0 {
		c.PauseBounceRate = 0.05
	}
	if c.PauseMinSent <= 0 {
		c.PauseMinSent = 500
	}
}

// Bouncer records a hard bounce against a subscriber; *preferences.Store is one.
type Bouncer interface {
	RecordBounce(ctx context.Context, in preferences.BounceInput) (preferences.BounceResult, error)
}

// Engine runs campaigns in the process that owns the store: it keeps their lifecycle,
// publishes them to the Tracker, and streams each running campaign's audience from the
// consent book into the queue as jobs, a window at a time, so that memory stays flat
// however large the lists. Workers (Worker) do the sending, here or on other hosts.
type Engine struct {
	store   *Store
	book    Book
	tracker Tracker
	q       queue.Queue
	commit  func(context.Context, func(*bbolt.Tx) error) error
	codec   *JobCodec
	bounces Bouncer
	metrics *engineMetrics
	cfg     EngineConfig
	now     func() time.Time
	log     *slog.Logger

	wake     chan struct{}
	mu       sync.Mutex
	planning map[string]bool
	wg       sync.WaitGroup
	hits     hitCounter  // opens and clicks not yet written (tracking.go)
	active   activitySet // subscribers who opened or clicked, not yet written
}

// NewEngine returns an engine. commit runs a write transaction on the store's db
// (preferences.Store.GroupCommit); with the embedded queue, jobs are queued in the
// same transaction as the planner's progress. bounces records the hard bounces that
// workers met at send time (Tracker.HardBounces) against their subscribers. Its
// counters are registered with reg.
func NewEngine(store *Store, book Book, tracker Tracker, q queue.Queue, commit func(context.Context, func(*bbolt.Tx) error) error,
	codec *JobCodec, bounces Bouncer, cfg EngineConfig, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) *Engine {
	cfg.fill()
	return &Engine{store: store, book: book, tracker: tracker, q: q, commit: commit, codec: codec, bounces: bounces,
		metrics: newEngineMetrics(reg), cfg: cfg, now: now, log: log, wake: make(chan struct{}, 1), planning: map[string]bool{}}
}

// hitFlush is how often Run writes the opens and clicks counted in memory.
const hitFlush = time.Second

// Run publishes every campaign that may still send (a Redis server may have lost
// them), then starts due schedules and plans running campaigns until ctx ends. It
// writes the opens and clicks counted every second, and once more when ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	defer e.wg.Wait()
	recs, _, err := e.store.campaignRecords(ctx, "", 0, func(r *record) bool { return active(r.Status) })
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := e.publish(ctx, r); err != nil {
			return fmt.Errorf("publish campaign %s: %w", r.ID, err)
		}
	}
	t := time.NewTicker(e.cfg.Poll)
	defer t.Stop()
	flush := time.NewTicker(hitFlush)
	defer flush.Stop()
	for tick := true; ; tick = true {
		if tick {
			if err := e.tick(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("campaign engine", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			if err := e.FlushHits(context.WithoutCancel(ctx)); err != nil {
				e.log.Error("campaign opens and clicks lost", "err", err)
			}
			return nil
		case <-flush.C:
			if err := e.FlushHits(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("campaign opens and clicks kept for the next write", "err", err)
			}
			if err := e.RecordHardBounces(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("hard bounces kept for the next round", "err", err)
			}
			tick = false
		case <-t.C:
		case <-e.wake:
		}
	}
}

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// tick starts due schedules and a planner for each running campaign without one.
func (e *Engine) tick(ctx context.Context) error {
	recs, _, err := e.store.campaignRecords(ctx, "", 0, func(r *record) bool {
		return r.Status == StatusRunning || r.Status == StatusScheduled
	})
	if err != nil {
		return err
	}
	now := e.now()
	for _, r := range recs {
		if r.Status == StatusScheduled {
			if r.SendAt != nil && r.SendAt.After(now) {
				continue
			}
			r, err = e.act(ctx, r.ID, func(r *record, now time.Time) error {
				if r.Status != StatusScheduled {
					return nil
				}
				return transition(r, actionRun, now)
			}, false)
			if err != nil {
				return err
			}
		}
		if r.Status != StatusRunning {
			continue
		}
		e.mu.Lock()
		started := e.planning[r.ID]
		e.planning[r.ID] = true
		e.mu.Unlock()
		if !started {
			e.wg.Add(1)
			go func(id string) {
				defer e.wg.Done()
				defer func() { e.mu.Lock(); delete(e.planning, id); e.mu.Unlock() }()
				if err := e.plan(ctx, id); err != nil && ctx.Err() == nil {
					e.log.Error("campaign planner stopped", "campaign", id, "err", err)
				}
			}(r.ID)
		}
	}
	return nil
}

// publish gives workers the campaign's definition and status.
func (e *Engine) publish(ctx context.Context, r *record) error {
	def := &Definition{ID: r.ID, Name: r.Name, Subject: r.Subject, HTML: r.HTML, Text: r.Text, From: r.From,
		Lists: r.Lists, ListNames: map[string]string{}, Track: r.Track, Status: r.Status}
	for _, id := range r.Lists {
		if l, err := e.book.List(ctx, id); err == nil {
			def.ListNames[id] = l.Name
		}
	}
	return e.tracker.Publish(ctx, def)
}

// act changes a campaign's status and publishes it. A change that lets workers send
// less (pause, cancel) is published before it is stored, one that lets them send more
// after, so that a failure in between never sends what should not be.
func (e *Engine) act(ctx context.Context, id string, change func(*record, time.Time) error, restrictive bool) (*record, error) {
	if restrictive {
		r, err := e.store.campaignRecord(id)
		if err != nil {
			return nil, err
		}
		probe := *r
		if err := change(&probe, e.now().UTC()); err != nil {
			return nil, err
		}
		if err := e.publish(ctx, &probe); err != nil {
			return nil, err
		}
	}
	r, err := e.store.updateCampaign(ctx, id, change)
	if err != nil {
		return nil, err
	}
	if !restrictive || r.Status != StatusPaused && r.Status != StatusCancelled {
		if err := e.publish(ctx, r); err != nil {
			return nil, err
		}
	}
	e.signal()
	return r, nil
}

// Act applies start, pause, resume or cancel to campaign id. Resuming a campaign that
// paused itself starts a new window for its rates (see tripped).
func (e *Engine) Act(ctx context.Context, id, action string) (Campaign, error) {
	restrictive := action == ActionPause || action == ActionCancel
	var counts Counts
	if action == ActionResume {
		var err error
		if counts, err = e.tracker.Counts(ctx, id); err != nil {
			return Campaign{}, err
		}
	}
	r, err := e.act(ctx, id, func(r *record, now time.Time) error {
		auto := r.PausedReason != ""
		if err := transition(r, action, now); err != nil {
			return err
		}
		if action == ActionResume && auto {
			r.Plan.Watch = watch{Sent: counts.Sent, SyncBounces: counts.Bounced, Bounces: r.Plan.Bounces, Complaints: r.Plan.Complaints}
		}
		return nil
	}, restrictive)
	if err != nil {
		return Campaign{}, err
	}
	return e.view(ctx, r)
}

// plan streams the audience of a running campaign into the queue until all of it is
// queued and settled, or the campaign stops running.
func (e *Engine) plan(ctx context.Context, id string) error {
	short := max(e.cfg.Poll/50, 5*time.Millisecond)
	published := false
	// The audience is counted (for the stats) beside the planning, once the first jobs
	// are queued or the planner stops: counting reads every membership, and would
	// otherwise hold back the first message. A campaign is finished only once counted.
	var counted chan struct{} // closed when the count is over; nil until it is started
	queued := make(chan struct{})
	var queuedOnce sync.Once
	markQueued := func() { queuedOnce.Do(func() { close(queued) }) }
	defer markQueued()
	for {
		if err := ctx.Err(); err != nil {
			return nil
		}
		r, err := e.store.campaignRecord(id)
		if err != nil {
			return err
		}
		if r.Status != StatusRunning {
			return nil
		}
		if !r.Plan.Counted && counted == nil {
			counted = make(chan struct{})
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer close(counted)
				select {
				case <-queued:
					e.countAudience(ctx, r)
				case <-ctx.Done():
				}
			}()
		}
		counts, err := e.tracker.Counts(ctx, id)
		if err != nil {
			return err
		}
		if why, what := e.tripped(r, counts); why != "" && !(r.Plan.Done && counts.JobsDone >= r.Plan.Jobs) {
			return e.autoPause(ctx, id, why, what)
		}
		if r.Plan.Done {
			if counts.JobsDone >= r.Plan.Jobs {
				if counted != nil {
					markQueued()
					select {
					case <-counted:
					case <-ctx.Done():
						return nil
					}
				}
				_, err := e.act(ctx, id, func(r *record, now time.Time) error {
					if r.Status == StatusRunning {
						r.Status = StatusFinished
						r.FinishedAt = &now
					}
					return nil
				}, false)
				return err
			}
			sleep(ctx, short)
			continue
		}
		room := int64(e.cfg.Window) - (r.Plan.Queued - counts.Settled())
		if room < int64(e.cfg.BatchSize) {
			sleep(ctx, short)
			continue
		}
		if !published {
			// A start is published after it is stored (act), and this planner may have
			// read it in between: a job reaching workers before they see the campaign
			// running would be dropped (unknown campaign) or not sent (a test send's
			// draft status). So the first jobs wait for the running definition.
			switch def, err := e.tracker.Definition(ctx, id); {
			case err == nil && def.Status == StatusRunning:
				published = true
			case err == nil || errors.Is(err, ErrCampaignNotFound):
				sleep(ctx, short)
				continue
			default:
				return err
			}
		}
		if err := e.queueMore(ctx, r, int(min(room, int64(10*e.cfg.BatchSize)))); err != nil {
			return err
		}
		markQueued()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// queueMore reads up to n more recipients and queues them as jobs. With a queue that
// can enqueue inside the store's transaction (the embedded one), jobs and progress
// commit together; otherwise jobs are queued first, so that a crash in between queues
// some twice (workers skip what is recorded), never loses any.
func (e *Engine) queueMore(ctx context.Context, r *record, n int) error {
	rs, cur, done, err := e.book.Audience(ctx, r.Lists, r.Plan.Cursor, n, !e.cfg.IDsOnly)
	if err != nil {
		return fmt.Errorf("read audience: %w", err)
	}
	var msgs []queue.Message
	for i := 0; i < len(rs); i += e.cfg.BatchSize {
		seq := r.Plan.Jobs + int64(len(msgs)) // the planner is the only writer of Plan.Jobs
		body, err := e.codec.encode(&job{Campaign: r.ID, Seq: seq, Recipients: rs[i:min(i+e.cfg.BatchSize, len(rs))]})
		if err != nil {
			return err
		}
		msgs = append(msgs, queue.Message{Kind: KindCampaign, Priority: queue.Normal, Body: body})
	}
	progress := func(tx *bbolt.Tx) error {
		cur2, err := getRecord(tx, r.ID)
		if err != nil {
			return err
		}
		if cur2.Status != StatusRunning && cur2.Status != StatusPaused {
			return errStopped
		}
		cur2.Plan.Cursor, cur2.Plan.Done = cur, done
		cur2.Plan.Queued += int64(len(rs))
		cur2.Plan.Jobs += int64(len(msgs))
		return putRecord(tx, cur2)
	}
	if txq, ok := e.q.(interface {
		EnqueueTx(*bbolt.Tx, ...queue.Message) error
	}); ok {
		err = e.commit(ctx, func(tx *bbolt.Tx) error {
			if err := progress(tx); err != nil {
				return err
			}
			// Someone erased since the audience was read is left out here, in the
			// transaction that queues: no job ever holds their data.
			out, err := e.withoutGone(tx, msgs, rs)
			if err != nil {
				return err
			}
			return txq.EnqueueTx(tx, out...)
		})
	} else {
		if err := e.q.Enqueue(ctx, msgs...); err != nil {
			return fmt.Errorf("queue jobs: %w", err)
		}
		err = e.commit(ctx, progress)
	}
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

var errStopped = errors.New("campaign stopped")

// keptChecker tells, inside a transaction, which subscribers were not erased;
// *preferences.Store is one.
type keptChecker interface {
	KeptTx(tx *bbolt.Tx, ids []string) []bool
}

// withoutGone returns msgs, re-sealing the jobs that hold a recipient erased since the
// audience was read (rs are the recipients, in job order). Jobs keep their number, even
// empty, so that the campaign still finishes.
func (e *Engine) withoutGone(tx *bbolt.Tx, msgs []queue.Message, rs []preferences.Recipient) ([]queue.Message, error) {
	ac, ok := e.book.(keptChecker)
	if !ok {
		return msgs, nil
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	active := ac.KeptTx(tx, ids)
	out := msgs
	for k := range msgs {
		lo, hi := k*e.cfg.BatchSize, min((k+1)*e.cfg.BatchSize, len(rs))
		if !slices.Contains(active[lo:hi], false) {
			continue
		}
		j, err := e.codec.decode(msgs[k].Body)
		if err != nil {
			return nil, err
		}
		kept := make([]preferences.Recipient, 0, hi-lo)
		for i := lo; i < hi; i++ {
			if active[i] {
				kept = append(kept, rs[i])
			}
		}
		j.Recipients = kept
		body, err := e.codec.encode(j)
		if err != nil {
			return nil, err
		}
		if &out[0] == &msgs[0] {
			out = slices.Clone(msgs)
		}
		out[k].Body = body
	}
	return out, nil
}

// countAudience stores the size of the audience, counted once at the start.
func (e *Engine) countAudience(ctx context.Context, r *record) {
	n, err := e.book.CountAudience(ctx, r.Lists)
	var ex Excluded
	if err == nil {
		ex, err = e.excluded(ctx, r.Lists)
	}
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("counting campaign audience", "campaign", r.ID, "err", err)
		}
		return
	}
	_, err = e.store.updateCampaign(ctx, r.ID, func(r *record, _ time.Time) error {
		r.Plan.Audience, r.Plan.Excluded, r.Plan.Counted = n, ex, true
		return nil
	})
	if err != nil && ctx.Err() == nil {
		e.log.Error("storing campaign audience", "campaign", r.ID, "err", err)
	}
}

// view is the campaign as the API shows it, with live stats.
func (e *Engine) view(ctx context.Context, r *record) (Campaign, error) {
	c := r.Campaign
	c.Stats = Stats{Audience: r.Plan.Audience, Queued: r.Plan.Queued, Unsubscribed: r.Plan.Unsubs,
		Bounced: r.Plan.Bounces, Complained: r.Plan.Complaints, Opens: r.Plan.Opens, Clicks: r.Plan.Clicks,
		MachineOpens: r.Plan.MachineOpens, MachineClicks: r.Plan.MachineClicks, Excluded: r.Plan.Excluded}
	if !r.Plan.Counted && r.Plan.Done {
		c.Stats.Audience = r.Plan.Queued
	}
	if r.Status != StatusDraft {
		counts, err := e.tracker.Counts(ctx, r.ID)
		if err != nil {
			return Campaign{}, err
		}
		c.Stats.Sent, c.Stats.Failed, c.Stats.Skipped = counts.Sent, counts.Failed, counts.Skipped
		c.Stats.Bounced += counts.Bounced
		c.Stats.BounceRate, c.Stats.ComplaintRate = rates(counts.Sent, counts.Bounced, r.Plan.Bounces, r.Plan.Complaints)
		c.Stats.Domains = domainStats(counts.Domains, r.Plan.Domains)
	}
	return c, nil
}

// Get returns campaign id with live stats.
func (e *Engine) Get(ctx context.Context, id string) (Campaign, error) {
	r, err := e.store.campaignRecord(id)
	if err != nil {
		return Campaign{}, err
	}
	return e.view(ctx, r)
}

// List returns a page of campaigns with live stats.
func (e *Engine) List(ctx context.Context, after string, limit int) ([]Campaign, string, error) {
	recs, next, err := e.store.campaignRecords(ctx, after, limit, nil)
	if err != nil {
		return nil, "", err
	}
	out, err := e.views(ctx, recs)
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// views returns the campaigns of recs with their counts.
func (e *Engine) views(ctx context.Context, recs []*record) ([]Campaign, error) {
	out := make([]Campaign, 0, len(recs))
	for _, r := range recs {
		c, err := e.view(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Latest returns the limit newest campaigns, newest first: the last ids (those created
// in the same millisecond in the reverse order of their random part). Only those are read and
// counted (with the Redis tracker, counting a campaign is a round trip), however many
// campaigns there are.
func (e *Engine) Latest(ctx context.Context, limit int) ([]Campaign, error) {
	recs, err := e.store.latestRecords(limit)
	if err != nil {
		return nil, err
	}
	return e.views(ctx, recs)
}

// Unsubscribed counts an unsubscribe that came from a link of campaign id.
func (e *Engine) Unsubscribed(ctx context.Context, id string) {
	e.count(ctx, id, "an unsubscribe", func(p *plan) { p.Unsubs++ })
}

// Bounced counts a permanent bounce report about the message of campaign id to
// subscriber, for the campaign and for the subscriber's address domain.
func (e *Engine) Bounced(ctx context.Context, id, subscriber string) {
	dom := e.domainBucket(ctx, subscriber)
	e.metrics.feedback.WithLabelValues("bounce", dom).Inc()
	e.count(ctx, id, "a bounce", func(p *plan) { p.Bounces++; p.feedback(dom, 1, 0) })
}

// Complained counts a complaint about the message of campaign id to subscriber, for
// the campaign and for the subscriber's address domain.
func (e *Engine) Complained(ctx context.Context, id, subscriber string) {
	dom := e.domainBucket(ctx, subscriber)
	e.metrics.feedback.WithLabelValues("complaint", dom).Inc()
	e.count(ctx, id, "a complaint", func(p *plan) { p.Complaints++; p.feedback(dom, 0, 1) })
}

func (e *Engine) count(ctx context.Context, id, what string, inc func(*plan)) {
	_, err := e.store.updateCampaign(ctx, id, func(r *record, _ time.Time) error {
		inc(&r.Plan)
		return nil
	})
	if err != nil && !errors.Is(err, ErrCampaignNotFound) {
		e.log.Warn("counting "+what+" of a campaign", "campaign", id, "err", err)
	}
}

// Lists returns the lists of campaign id: a mailto unsubscribe from one of its
// messages withdraws from those.
func (e *Engine) Lists(ctx context.Context, id string) ([]string, error) {
	r, err := e.store.campaignRecord(id)
	if err != nil {
		return nil, err
	}
	return r.Lists, nil
}

// Input is a new campaign as the API receives it.
type Input struct {
	Name     string     `json:"name"`
	Subject  string     `json:"subject"`
	Lists    []string   `json:"lists"`
	Template string     `json:"template"`
	HTML     string     `json:"html"`
	Text     string     `json:"text"`
	From     string     `json:"from"`
	SendAt   *time.Time `json:"send_at"`
	Track    bool       `json:"track"`
}

// MaxCampaignLists bounds the lists of one campaign.
const MaxCampaignLists = 50

// Create validates in and stores it as a draft. Template problems are
// *templates.TemplateError, others *FieldError.
func (e *Engine) Create(ctx context.Context, in Input) (Campaign, error) {
	c, err := e.check(ctx, in)
	if err != nil {
		return Campaign{}, err
	}
	return e.store.createCampaign(ctx, c)
}

// check validates in as a draft's content, and returns the campaign it makes: the
// content of its template copied, its From resolved. It is the one validation of
// Create and Update.
func (e *Engine) check(ctx context.Context, in Input) (Campaign, error) {
	c := Campaign{Name: strings.TrimSpace(in.Name), Subject: in.Subject, Template: in.Template, HTML: in.HTML, Text: in.Text,
		From: strings.TrimSpace(in.From), SendAt: in.SendAt, Track: in.Track}
	switch {
	case c.Name == "":
		return Campaign{}, &FieldError{Field: "name", Reason: "is required"}
	case len(c.Name) > MaxNameBytes:
		return Campaign{}, &FieldError{Field: "name", Reason: fmt.Sprintf("is longer than %d bytes", MaxNameBytes)}
	case strings.ContainsAny(c.Name, "\r\n\x00"):
		return Campaign{}, &FieldError{Field: "name", Reason: "must be one line"}
	case len(in.Lists) == 0:
		return Campaign{}, &FieldError{Field: "lists", Reason: "name at least one list"}
	case len(in.Lists) > MaxCampaignLists:
		return Campaign{}, &FieldError{Field: "lists", Reason: fmt.Sprintf("name at most %d lists", MaxCampaignLists)}
	case in.Template != "" && in.HTML != "":
		return Campaign{}, &FieldError{Field: "template", Reason: "give a template or html, not both"}
	case in.Template == "" && in.HTML == "":
		return Campaign{}, &FieldError{Field: "html", Reason: "give a template or html"}
	}
	var firstFrom string
	for _, id := range in.Lists {
		if !preferences.ValidListID(id) {
			return Campaign{}, &FieldError{Field: "lists", Reason: "unknown list " + id}
		}
		l, err := e.book.List(ctx, id)
		if errors.Is(err, preferences.ErrNotFound) {
			return Campaign{}, &FieldError{Field: "lists", Reason: "unknown list " + id}
		}
		if err != nil {
			return Campaign{}, err
		}
		if !slices.Contains(c.Lists, id) {
			c.Lists = append(c.Lists, id)
		}
		if firstFrom == "" {
			firstFrom = l.From
		}
	}
	if in.Template != "" {
		t, err := e.store.Get(ctx, in.Template)
		if errors.Is(err, ErrNotFound) {
			return Campaign{}, &FieldError{Field: "template", Reason: "unknown template " + in.Template}
		}
		if err != nil {
			return Campaign{}, err
		}
		c.HTML, c.Text = t.HTML, t.Text
		if c.Subject == "" {
			c.Subject = t.Subject
		}
	}
	if strings.TrimSpace(c.Subject) == "" {
		return Campaign{}, &FieldError{Field: "subject", Reason: "is required"}
	}
	if c.From == "" {
		c.From = firstFrom
	}
	if c.From == "" {
		c.From = e.cfg.DefaultFrom
	}
	if strings.ContainsAny(c.From, "\r\n") {
		return Campaign{}, &FieldError{Field: "from", Reason: "must be one line"}
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return Campaign{}, &FieldError{Field: "from", Reason: "is not an email address"}
	}
	if err := e.fromRefused(c.From, strings.TrimSpace(in.From) != "", firstFrom != ""); err != nil {
		return Campaign{}, err
	}
	if _, err := templates.ParseCampaign(c.Subject, c.HTML, c.Text); err != nil {
		return Campaign{}, err
	}
	if c.SendAt != nil {
		t := c.SendAt.UTC()
		c.SendAt = &t
	}
	return c, nil
}

// MaxTestEmails bounds the addresses of one test send.
const MaxTestEmails = 10

// Test queues the campaign for the given addresses with sample data, ahead of
// campaign mail. Addresses are validated by the caller.
func (e *Engine) Test(ctx context.Context, id string, emails []string) error {
	r, err := e.store.campaignRecord(id)
	if err != nil {
		return err
	}
	if r.Status == StatusDraft {
		// Workers find campaigns in the tracker; a draft is published for its tests.
		if err := e.publish(ctx, r); err != nil {
			return err
		}
	}
	body, err := e.codec.encode(&job{Campaign: id, Test: emails})
	if err != nil {
		return err
	}
	return e.q.Enqueue(ctx, queue.Message{Kind: KindCampaign, Priority: queue.High, Body: body})
}
