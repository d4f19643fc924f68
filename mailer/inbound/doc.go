// Package inbound is consentmail's inbound SMTP server (go-smtp): it receives the
// delivery-status notifications (RFC 3464), abuse feedback reports (RFC 5965) and
// mailto unsubscribes (RFC 2369, RFC 8058's mailto) that come back for the mail
// consentmail sends, parses them with go-message, and hands each to a Handler that
// the caller supplies. It imports no consentmail feature.
//
// # Promises
//
//   - Only three kinds of recipient are accepted, all at the configured domain:
//     bounce+TOKEN (a campaign message's VERP return path), unsubscribe+TOKEN (its
//     List-Unsubscribe mailto) and fbl (the one feedback-loop address registered with
//     mailbox providers). The Handler checks every token at RCPT TO; anything else,
//     and any token it refuses, is answered 550 5.1.1 before the data is sent.
//   - Messages are limited to MaxMessageBytes (10 MiB by default; the SIZE extension
//     announces it), connections to MaxConns at once and ConnsPerMinute per client IP
//     (421 beyond), and every read and write has a deadline. STARTTLS is offered when
//     a TLS configuration is given.
//   - Nothing is dropped unread: a message that is no report, or a report the
//     Handler cannot match (ErrUnmatched), goes to Handler.Quarantine with the reason
//     before the 250 is answered. A Handler error of any other kind answers 451, so
//     the sender tries again later.
package inbound
