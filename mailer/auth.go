package mailer

import (
	"errors"
	"slices"
	"strings"

	"github.com/wneessen/go-mail/smtp"
)

// autoAuth picks a mechanism once the relay has said which it offers and whether the
// connection is encrypted, then delegates to go-mail's implementation. One is made per
// dial because mechanisms keep per-exchange state.
type autoAuth struct {
	relay Relay
	mech  smtp.Auth
}

func (a *autoAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	r := a.relay
	offered := func(m string) bool {
		return slices.ContainsFunc(server.Auth, func(s string) bool { return strings.EqualFold(s, m) })
	}
	switch r.Auth {
	case AuthPlain:
		a.mech = smtp.PlainAuth("", r.Username, r.Password, r.Host, false)
	case AuthLogin:
		a.mech = smtp.LoginAuth(r.Username, r.Password, r.Host, false)
	case AuthCRAMMD5:
		a.mech = smtp.CRAMMD5Auth(r.Username, r.Password)
	case AuthSCRAMSHA256:
		a.mech = smtp.ScramSHA256Auth(r.Username, r.Password)
	default:
		// Challenge-response first; a password in clear only under TLS or on loopback.
		clearOK := server.TLS || isLoopback(r.Host)
		switch {
		case offered("SCRAM-SHA-256"):
			a.mech = smtp.ScramSHA256Auth(r.Username, r.Password)
		case offered("SCRAM-SHA-1"):
			a.mech = smtp.ScramSHA1Auth(r.Username, r.Password)
		case offered("CRAM-MD5"):
			a.mech = smtp.CRAMMD5Auth(r.Username, r.Password)
		case clearOK && offered("PLAIN"):
			a.mech = smtp.PlainAuth("", r.Username, r.Password, r.Host, true)
		case clearOK && offered("LOGIN"):
			a.mech = smtp.LoginAuth(r.Username, r.Password, r.Host, true)
		case !clearOK && (offered("PLAIN") || offered("LOGIN")):
			return "", nil, errors.New("relay offers only PLAIN/LOGIN on an unencrypted connection; use tls=starttls or tls")
		default:
			return "", nil, errors.New("relay offers no supported AUTH mechanism (" + strings.Join(server.Auth, " ") + ")")
		}
	}
	return a.mech.Start(server)
}

func (a *autoAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.mech.Next(fromServer, more)
}
