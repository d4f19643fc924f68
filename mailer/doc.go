// Package mailer sends consentmail's outbound email over SMTP and catches it in
// development.
//
// # Sending
//
// A [Sender] delivers one [Message] per [Sender.Send] call to one of an ordered list of
// relays ([ParseRelays] reads CONSENTMAIL_SMTP_URL). It promises:
//
//   - Messages are written with the standard library's mime and net/mail packages:
//     RFC 5322 headers folded at spaces, RFC 2047 encoded words for non-ASCII subjects,
//     names and header values, bodies as they are (7bit) when they are ASCII in lines
//     no transport changes, else quoted-printable (our encoder copies runs of plain
//     bytes; it is checked against mime/quotedprintable's reader), RFC 2046
//     multipart/alternative when both a text and an HTML part are given, a unique
//     Message-ID and a Date. (go-mail's writer cost 44 µs a message, this one 9.) IDN domains are sent as A-labels (RFC 5890); a non-ASCII
//     local part needs a relay that offers SMTPUTF8 (RFC 6531).
//   - Header injection is impossible: a CR or LF in any caller-supplied header field is
//     refused with [ErrHeaderInjection] before anything is sent.
//   - SMTP connections (RFC 5321; STARTTLS per RFC 3207, implicit TLS per RFC 8314,
//     AUTH per RFC 4954) are kept open and reused: each relay has a pool of at most
//     max_conns live connections. A connection found broken is discarded and redialled.
//     When the relay offers PIPELINING and CHUNKING (RFC 2920, RFC 3030), a message
//     costs one round trip (MAIL, RCPT and BDAT LAST in one write).
//   - Rate limits hold per relay and globally; waiting for them honours ctx.
//   - When a relay cannot be reached (dial error, timeout, TLS or AUTH failure, a 421
//     reply), the next relay in order is tried.
//   - Every failure is classified once, as a [*SendError]: 4xx replies and connection
//     problems are temporary (retry later), 5xx replies and invalid messages are
//     permanent (never retry). [IsTemporary] reads the verdict.
//   - With [Options.DKIM] set, every message from a domain with a key carries an RFC
//     6376 DKIM-Signature (RFC 8463 Ed25519 or RSA-SHA256, relaxed/relaxed) by the key
//     of its From domain (or of a parent domain), so that it aligns for DMARC. Every
//     signed header field is over-signed (RFC 6376 §8.15): a second From or
//     List-Unsubscribe added later breaks the signature. Mail from a domain without a
//     key goes out unsigned, logged once per domain; [Sender.CheckFrom] tells APIs.
//   - Passwords never appear in logs, errors or a [Relay]'s printed form.
//
// # Catching
//
// A [Catcher] is an SMTP server (github.com/emersion/go-smtp) that accepts every message
// and keeps the last few in memory, never on disk: it is `consentmail dev`'s relay and,
// through package smtptest, the sink of tests. [Catcher.Routes] mounts a web inbox at
// /dev/inbox. Faults can be injected per recipient to test retries and bounces.
//
// # Caveats
//
// When a connection breaks, or ctx is cancelled, after the whole message was sent but
// before the relay's reply arrived, the relay may have accepted it: Send reports a
// temporary error saying delivery is unknown, and a later retry may deliver it twice.
// RFC 5321 §4.1.1.4 leaves no better choice; Send itself never resends in that case.
package mailer
