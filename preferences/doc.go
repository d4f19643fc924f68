// Package preferences is the consent book, pure domain: the bbolt store of lists,
// subscribers and their subscriptions, the API keys, and the append-only, hash-chained
// consent ledger that proves every consent and every withdrawal; sealing, import rules,
// erasure, the export document, retention and the audience campaigns read.
//
// It imports no HTTP framework, mailer, queue or templates. Its adapters live in
// subpackages and depend on it, never the other way:
//
//   - adminapi: the admin API of lists, API keys, the ledger, subscribers and the register
//   - pages: the unsubscribe pages and the preference centre
//   - linkmail: the mail of data links and preference links, and its queue handler
//   - inboundmail: bounces, complaints and mailto unsubscribes from the inbound SMTP
//     server, and the quarantine of what matches nothing
//
// Beside them, small leaves any feature may import: address (the one address
// normaliser, and masking), apiauth (the admin API's bearer-key middleware), linktoken
// (signed links and forms), httperr (the contract's error shape).
//
// # Promises
//
//   - Personal data (email, name, attributes, IP addresses, user agents) is sealed with
//     AES-256-GCM under a per-subscriber data key. Data keys are wrapped by a key derived
//     from the root secret. Email lookup uses a keyed blind index (HMAC-SHA256 of the
//     normalised address), so no plaintext address is ever written to disk.
//   - The ledger is append-only. Event n stores the hash of event n-1 and its own hash,
//     SHA-256 over its sequence number, the previous hash and its canonical body. The
//     ledger's personal fields are sealed with the subscriber's data key, so destroying
//     that key (erasure) makes them unrecoverable while the chain still verifies.
//   - Every consent text a list has had, in each language (List.Translations), is kept
//     for ever under its version, also after the list is deleted. Signup and import
//     events record the version and the language of the text shown; every read of the
//     ledger (and so the export) resolves them to the exact text (Event.ConsentTexts).
//   - Writes that many requests make at once (signups, confirmations) are group
//     committed: each request waits for the fsync of the transaction that holds it, and
//     one transaction holds every request that arrived while the previous one committed.
//   - A bounce that blocks (RecordBounce) and a complaint (RecordComplaint) go through apply
//     (TBounce, TComplaint); a soft bounce below the limit is an event only. Their
//     details about the person are sealed in the event.
//     Inbound mail that matches nobody (Quarantine) is sealed with a key of its own
//     and kept QuarantineTTL.
//
// # The consent state machine
//
// A subscription is in one of four states: none, pending, confirmed, unsubscribed.
// Every change of it, and of a subscriber's status, goes through one function (apply),
// which writes the state, the membership index, the ledger event and any opt-in round
// in the same transaction. Its table, for an active (or blocked) subscriber ("–": the
// transition does not apply and nothing is written):
//
//	transition     none       pending       confirmed   unsubscribed
//	signup         pending    pending       –           pending
//	renew          –          pending       –           –
//	confirm        –          confirmed¹    –           –
//	unsubscribe    –          unsubscribed  unsubscribed –
//	complaint      –          unsubscribed  unsubscribed –
//	import_proof   confirmed  confirmed     –           confirmed²
//	import         pending    pending       –           –
//	expire         –          unsubscribed  unsubscribed –
//	reconfirm      –          pending       pending     –
//	list_deleted   –          none          none        none
//	erase          –          unsubscribed  unsubscribed –
//	restrict, unrestrict, bounce: no subscription changes
//
//	¹ only with the link of the subscription's current opt-in round
//	² only when the proof is dated after the withdrawal
//
// The subscriber as a whole: restrict takes active to restricted, unrestrict takes it
// back, bounce takes active to blocked, erase takes active or blocked to erased, and a
// rectified address (reconfirm) takes blocked back to active. A restricted subscriber
// is changed by nothing but unrestrict, except that a withdrawal (unsubscribe,
// complaint) is never refused; it cannot be erased until unrestricted, and retention
// leaves it alone. An erased subscriber is changed by nothing (a deleted list is
// removed from everyone). Rules that follow: an import never re-confirms a withdrawal
// unless its proof is dated after it; an address erased (on request or by retention)
// stays suppressed, whoever signs it up meanwhile, until a double opt-in confirms it,
// and an import needs proof of consent given after the erasure.
//
// # Erasure
//
// Eraser is the one erasure of the admin API, the preference centre and retention.
// Its transaction destroys the data key, the lookup entry and the activity, adds the
// suppression entry, ends every subscription and records the steps still to do:
// replace the KEK of the person's key group (so that old copies of the data key in
// the data file's freed pages open with nothing: keyfile.go), tell the withdrawal
// mirror (Redis), drop the person's queued messages. Each step is crossed off when
// done; a failed one is retried by Eraser.Run and by erasing again, which answers with
// the same receipt.
//
// # Caveats
//
// Verify detects any change to stored events and any removal inside the chain; removing
// the newest events is only detectable against a head hash recorded elsewhere (print the
// head from ledger verify into your own records).
package preferences
