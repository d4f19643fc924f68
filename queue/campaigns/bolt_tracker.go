package campaigns

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/address"
	"consentmail/preferences/linktoken"
)

// Buckets of the embedded tracker.
var (
	bucketDefs    = []byte("campaigns.defs")    // campaign id -> JSON Definition
	bucketStatus  = []byte("campaigns.status")  // campaign id -> status, read for every job
	bucketResults = []byte("campaigns.results") // campaign id \x00 subscriber id -> Result: campaigns begun before campaigns.outcomes
	// bucketOutcomes: campaign id -> a bucket of outcomeKey(subscriber id) -> Result.
	bucketOutcomes = []byte("campaigns.outcomes")
	bucketCounts   = []byte("campaigns.counts") // campaign id -> JSON boltCounts
	bucketJobs     = []byte("campaigns.jobs")   // campaign id \x00 job seq -> nil
	bucketHard     = []byte("campaigns.hard")   // sequence -> JSON HardBounce, until acknowledged
)

// boltCounts is the stored form of Counts.
type boltCounts struct {
	Sent    int64                  `json:"sent"`
	Failed  int64                  `json:"failed"`
	Skipped int64                  `json:"skipped"`
	Bounced int64                  `json:"bounced,omitempty"`
	Jobs    int64                  `json:"jobs,omitempty"`
	Domains map[string]DomainSends `json:"domains,omitempty"`
}

func (b boltCounts) counts() Counts {
	return Counts{Sent: b.Sent, Failed: b.Failed, Skipped: b.Skipped, Bounced: b.Bounced, JobsDone: b.Jobs, Domains: b.Domains}
}

// addDomain moves a subscriber's count in domain's counters from result was to
// result now.
func (c *boltCounts) addDomain(domain string, was, now Result) {
	counted := func(r Result) bool { return r == ResultSent || r == ResultBounced }
	if was == now || !counted(was) && !counted(now) {
		return
	}
	if c.Domains == nil {
		c.Domains = map[string]DomainSends{}
	}
	n := len(c.Domains)
	if _, ok := c.Domains[OtherDomain]; ok {
		n--
	}
	if _, ok := c.Domains[domain]; !ok && (domain == "" || n >= MaxDomains) {
		domain = OtherDomain
	}
	d := c.Domains[domain]
	for r, n := range map[Result]int64{was: -1, now: 1} {
		switch r {
		case ResultSent:
			d.Sent += n
		case ResultBounced:
			d.Bounced += n
		}
	}
	c.Domains[domain] = d
}

func loadCounts(b *bbolt.Bucket, campaign string) (boltCounts, error) {
	var c boltCounts
	if v := b.Get([]byte(campaign)); v != nil {
		if err := gojson.Unmarshal(v, &c); err != nil {
			return c, fmt.Errorf("counts of %s: %w", campaign, err)
		}
	}
	return c, nil
}

func storeCounts(b *bbolt.Bucket, campaign string, c boltCounts) error {
	raw, err := gojson.Marshal(c)
	if err != nil {
		return err
	}
	return b.Put([]byte(campaign), raw)
}

// ConsentChecker tells, inside a read transaction of the store's file, whether
// recipients may receive a campaign now, and fills in the personal data of those
// queued with their id and lists only (EngineConfig.IDsOnly); *preferences.Store is
// one.
type ConsentChecker interface {
	SendableTx(tx *bbolt.Tx, rs []preferences.Recipient) ([]bool, error)
}

// BoltTracker is the Tracker of a single process with the embedded queue: results and
// counters live in the store's bbolt file, written through the store's group commit;
// claims live in memory (no other process sends); consent is read from the consent
// book itself, so the only mirror withdrawals need is the Sending register the
// tracker holds its claims in: a claim holds its recipients there before it reads
// their consent, so that a withdrawal (which waits on Sending) and a claim never miss
// each other.
type BoltTracker struct {
	db      *bbolt.DB
	commit  func(context.Context, func(*bbolt.Tx) error) error
	book    ConsentChecker
	sending *Sending
	now     func() time.Time

	mu     sync.Mutex
	claims map[string]time.Time // campaign \x00 subscriber -> deadline
}

var _ Tracker = (*BoltTracker)(nil)

// NewBoltTracker returns the embedded tracker over db; commit runs a write
// transaction (preferences.Store.GroupCommit, so results share the store's commits);
// sending is the register the store's withdrawals wait on (nil for a tracker that
// only reads results).
func NewBoltTracker(db *bbolt.DB, commit func(context.Context, func(*bbolt.Tx) error) error, book ConsentChecker,
	sending *Sending, now func() time.Time) (*BoltTracker, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketDefs, bucketStatus, bucketResults, bucketOutcomes, bucketCounts, bucketJobs, bucketHard} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("campaigns: create tracker buckets: %w", err)
	}
	if sending == nil {
		sending = NewSending(0, now)
	}
	return &BoltTracker{db: db, commit: commit, book: book, sending: sending, now: now, claims: map[string]time.Time{}}, nil
}

func resultKey(campaign, sub string) []byte { return []byte(claimKey(campaign, sub)) }

// claimKey is a recipient's key in BoltTracker.claims: resultKey's bytes, as a string.
func claimKey(campaign, sub string) string { return campaign + "\x00" + sub }

// results are one campaign's recorded results in a transaction. A campaign's results
// are kept in a bucket of its own, keyed by outcomeKey: an entry of 30 bytes (about 45
// of the data file's pages, as a campaign writes them) instead of 74 (about 120) with
// both ids in every key, so that a campaign to 10,000,000 takes a third of the pages,
// and of the entries of bbolt's freelist of the pages written since the file was
// opened (memory). A campaign that has results
// in the first layout (one key per campaign and subscriber, in bucketResults: begun
// by a version before) keeps it.
type results struct {
	b        *bbolt.Bucket // nil: none yet (when read)
	flat     bool          // b is bucketResults, the first layout, keyed by resultKey
	campaign string
	// at looks results up, one cursor for all of a transaction's lookups (a group
	// looks up ten).
	at preferences.Seeker
}

func newResults(b *bbolt.Bucket, flat bool, campaign string) results {
	r := results{b: b, flat: flat, campaign: campaign}
	if b != nil {
		r.at = preferences.SeekerOf(b)
	}
	return r
}

// key is subscriber's key in r.b.
func (r results) key(subscriber string) []byte {
	if r.flat {
		return resultKey(r.campaign, subscriber)
	}
	return outcomeKey(subscriber)
}

// readResults returns campaign's results in tx, to read.
func readResults(tx *bbolt.Tx, campaign string) results {
	flat := tx.Bucket(bucketResults)
	prefix := append([]byte(campaign), 0)
	if k, _ := flat.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
		return newResults(flat, true, campaign)
	}
	return newResults(tx.Bucket(bucketOutcomes).Bucket([]byte(campaign)), false, campaign)
}

// writeResults returns campaign's results in tx, to write: the campaign's bucket is
// made at its first result.
func writeResults(tx *bbolt.Tx, campaign string) (results, error) {
	if r := readResults(tx, campaign); r.b != nil {
		return r, nil
	}
	own, err := tx.Bucket(bucketOutcomes).CreateBucket([]byte(campaign))
	if err != nil {
		return results{}, err
	}
	return newResults(own, false, campaign), nil
}

// get returns the result recorded for subscriber, nil if none.
func (r results) get(subscriber string) []byte {
	if r.b == nil {
		return nil
	}
	return r.at.Get(r.key(subscriber))
}

// set records v for subscriber (results opened to write) and returns the result it
// replaces (had: there was one), building the subscriber's key once.
func (r results) set(subscriber string, v Result) (was Result, had bool, err error) {
	k := r.key(subscriber)
	if old := r.at.Get(k); len(old) == 1 {
		was, had = Result(old[0]), true
	}
	return was, had, r.b.Put(k, []byte{byte(v)})
}

// outcomeKey is a subscriber's key in a campaign's bucket of results: 0 and the 12
// bytes of an id of the store's form (time first, so that a campaign's results are
// written in the order of its audience); 1 and the id itself for any other.
func outcomeKey(subscriber string) []byte {
	if b, ok := linktoken.AppendCompactSubscriberID(append(make([]byte, 0, 13), 0), subscriber); ok {
		return b
	}
	return append([]byte{1}, subscriber...)
}

// Publish stores def.
func (t *BoltTracker) Publish(ctx context.Context, def *Definition) error {
	raw, err := gojson.Marshal(def)
	if err != nil {
		return err
	}
	return t.commit(ctx, func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketStatus).Put([]byte(def.ID), []byte(def.Status)); err != nil {
			return err
		}
		return tx.Bucket(bucketDefs).Put([]byte(def.ID), raw)
	})
}

// Definition returns the published definition of id.
func (t *BoltTracker) Definition(ctx context.Context, id string) (*Definition, error) {
	var def Definition
	err := t.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketDefs).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("campaign %s: %w", id, ErrCampaignNotFound)
		}
		return gojson.Unmarshal(v, &def)
	})
	if err != nil {
		return nil, err
	}
	return &def, nil
}

// Claim decides for each recipient; see Tracker. The recipients not claimed by
// another delivery are claimed and held in Sending first; then one read transaction
// gives the campaign's status, their results and their consent, and fills in rs the
// personal data of those to send that a job queued without it (EngineConfig.IDsOnly): a withdrawal
// committed before that read is seen by it, one committed after it waits for the hold
// (Sending.Withdraw).
func (t *BoltTracker) Claim(ctx context.Context, campaign string, rs []preferences.Recipient, until time.Time) ([]Verdict, error) {
	out := make([]Verdict, len(rs))
	now := t.now()
	cand := make([]preferences.Recipient, 0, len(rs))
	at := make([]int, 0, len(rs))
	t.mu.Lock()
	for i, r := range rs {
		key := claimKey(campaign, r.ID)
		if deadline, claimed := t.claims[key]; claimed && deadline.After(now) {
			out[i] = Busy
			continue
		}
		t.claims[key] = until
		cand = append(cand, r)
		at = append(at, i)
	}
	t.mu.Unlock()
	t.sending.hold(campaign, until, cand)

	var status string
	var done, open []preferences.Recipient // recorded already; the rest
	var openAt []int                       // the index in rs of each of open
	var consenting []bool
	err := t.db.View(func(tx *bbolt.Tx) error {
		status = string(tx.Bucket(bucketStatus).Get([]byte(campaign)))
		if status != StatusRunning {
			return nil
		}
		results := readResults(tx, campaign)
		for k, r := range cand {
			if results.get(r.ID) != nil {
				out[at[k]] = Done
				done = append(done, r)
				continue
			}
			open, openAt = append(open, r), append(openAt, at[k])
		}
		var err error
		consenting, err = t.book.SendableTx(tx, open)
		return err
	})
	if err != nil || status != StatusRunning {
		t.release(campaign, cand)
		if err != nil {
			return nil, err
		}
		v := Cancelled
		if status == StatusPaused {
			v = Paused
		}
		for i := range out {
			out[i] = v
		}
		return out, nil
	}
	var skips []Outcome
	for k, r := range open {
		if consenting[k] {
			out[openAt[k]] = Send
			rs[openAt[k]] = r // with the personal data SendableTx filled in
			continue
		}
		out[openAt[k]] = Skip
		skips = append(skips, Outcome{Subscriber: r.ID, Result: ResultSkipped})
	}
	if len(done) > 0 {
		t.release(campaign, done)
	}
	if len(skips) > 0 {
		if err := t.Record(ctx, campaign, skips); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// release ends the claims and holds of rs.
func (t *BoltTracker) release(campaign string, rs []preferences.Recipient) {
	ids := make([]string, len(rs))
	t.mu.Lock()
	for i, r := range rs {
		ids[i] = r.ID
		delete(t.claims, claimKey(campaign, r.ID))
	}
	t.mu.Unlock()
	t.sending.release(campaign, ids...)
}

// Record stores results; see Tracker.
func (t *BoltTracker) Record(ctx context.Context, campaign string, outcomes []Outcome) error {
	var stored []Outcome
	for _, o := range outcomes {
		if o.Result != ResultNone {
			stored = append(stored, o)
		}
	}
	if len(stored) > 0 {
		err := t.commit(ctx, func(tx *bbolt.Tx) error {
			results, err := writeResults(tx, campaign)
			if err != nil {
				return err
			}
			counts := tx.Bucket(bucketCounts)
			c, err := loadCounts(counts, campaign)
			if err != nil {
				return err
			}
			for _, o := range stored {
				was, had, err := results.set(o.Subscriber, o.Result)
				if err != nil {
					return err
				}
				if had {
					c.add(was, -1)
				}
				c.add(o.Result, 1)
				c.addDomain(o.Domain, was, o.Result)
				if o.Result == ResultBounced && was != ResultBounced {
					if err := queueHardBounce(tx, HardBounce{Campaign: campaign, Subscriber: o.Subscriber, Status: o.Status, Reply: o.Reply}); err != nil {
						return err
					}
				}
			}
			return storeCounts(counts, campaign, c)
		})
		if err != nil {
			return err
		}
	}
	ids := make([]string, len(outcomes))
	t.mu.Lock()
	for i, o := range outcomes {
		ids[i] = o.Subscriber
		delete(t.claims, claimKey(campaign, o.Subscriber))
	}
	t.mu.Unlock()
	t.sending.release(campaign, ids...)
	return nil
}

func (c *boltCounts) add(r Result, n int64) {
	switch r {
	case ResultSent:
		c.Sent += n
	case ResultFailed:
		c.Failed += n
	case ResultBounced:
		c.Failed += n
		c.Bounced += n
	case ResultSkipped:
		c.Skipped += n
	}
}

func queueHardBounce(tx *bbolt.Tx, h HardBounce) error {
	b := tx.Bucket(bucketHard)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	raw, err := gojson.Marshal(h)
	if err != nil {
		return err
	}
	return b.Put(binary.BigEndian.AppendUint64(nil, seq), raw)
}

// Upgrade rewrites what earlier versions left in the data file that names a person:
// the replies of the hard bounces still queued (versions before address.Redact queued
// a relay's reply as it came, often quoting the address), and the per-domain counters
// and feedback of every campaign (versions before DomainBucket kept the first domains
// a campaign sent to by name, a person's own domain among them: foldDomains). The
// store runs it at the first open of a data file by this version
// (preferences.WithUpgrade), before it overwrites the free pages, where the copies it
// replaced remain.
func Upgrade(tx *bbolt.Tx) error {
	redact := func(h *HardBounce) bool {
		r := address.Redact(h.Reply)
		changed := r != h.Reply
		h.Reply = r
		return changed
	}
	foldSends := func(c *boltCounts) (folded bool) {
		c.Domains, folded = foldDomains(c.Domains, DomainSends.add)
		return folded
	}
	foldFeedback := func(r *record) (folded bool) {
		r.Plan.Domains, folded = foldDomains(r.Plan.Domains, domainFeedback.add)
		return folded
	}
	return errors.Join(rewriteJSON(tx, bucketHard, redact), rewriteJSON(tx, bucketCounts, foldSends),
		rewriteJSON(tx, bucketCampaigns, foldFeedback))
}

// rewriteJSON rewrites each JSON entry of the bucket name (if there is one) that change
// changes; change reports whether it did.
func rewriteJSON[T any](tx *bbolt.Tx, name []byte, change func(*T) bool) error {
	b := tx.Bucket(name)
	if b == nil {
		return nil
	}
	type rewrite struct{ k, v []byte }
	var todo []rewrite
	err := b.ForEach(func(k, v []byte) error {
		var e T
		if err := gojson.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("%s %q: %w", name, k, err)
		}
		if !change(&e) {
			return nil
		}
		raw, err := gojson.Marshal(e)
		if err != nil {
			return err
		}
		todo = append(todo, rewrite{bytes.Clone(k), raw})
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range todo {
		if err := b.Put(r.k, r.v); err != nil {
			return err
		}
	}
	return nil
}

// HardBounces returns the oldest hard bounces not acknowledged; see Tracker.
func (t *BoltTracker) HardBounces(ctx context.Context, max int) ([]HardBounce, error) {
	var out []HardBounce
	err := t.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketHard).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			var h HardBounce
			if err := gojson.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("hard bounce %x: %w", k, err)
			}
			out = append(out, h)
		}
		return nil
	})
	return out, err
}

// AckHardBounces removes the n oldest hard bounces; see Tracker.
func (t *BoltTracker) AckHardBounces(ctx context.Context, n int) error {
	return t.commit(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketHard).Cursor()
		for k, _ := c.First(); k != nil && n > 0; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		return nil
	})
}

// Result returns the recorded result of one subscriber.
func (t *BoltTracker) Result(ctx context.Context, campaign, subscriber string) (Result, error) {
	var r Result
	err := t.db.View(func(tx *bbolt.Tx) error {
		if v := readResults(tx, campaign).get(subscriber); len(v) == 1 {
			r = Result(v[0])
		}
		return nil
	})
	return r, err
}

// Counts returns the campaign's counters.
func (t *BoltTracker) Counts(ctx context.Context, campaign string) (Counts, error) {
	var c boltCounts
	err := t.db.View(func(tx *bbolt.Tx) error {
		var err error
		c, err = loadCounts(tx.Bucket(bucketCounts), campaign)
		return err
	})
	return c.counts(), err
}

// JobDone records a done job; see Tracker.
func (t *BoltTracker) JobDone(ctx context.Context, campaign string, seq int64) error {
	key := make([]byte, 0, len(campaign)+9)
	key = append(append(key, campaign...), 0)
	key = binary.BigEndian.AppendUint64(key, uint64(seq))
	return t.commit(ctx, func(tx *bbolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		if jobs.Get(key) != nil {
			return nil
		}
		if err := jobs.Put(key, nil); err != nil {
			return err
		}
		counts := tx.Bucket(bucketCounts)
		c, err := loadCounts(counts, campaign)
		if err != nil {
			return err
		}
		c.Jobs++
		return storeCounts(counts, campaign, c)
	})
}

// Status returns the published status of the campaign.
func (t *BoltTracker) Status(ctx context.Context, campaign string) (string, error) {
	var st string
	err := t.db.View(func(tx *bbolt.Tx) error {
		st = string(tx.Bucket(bucketStatus).Get([]byte(campaign)))
		return nil
	})
	return st, err
}
