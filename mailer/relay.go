package mailer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// TLSMode says how a connection to a relay is protected.
type TLSMode int

const (
	// TLSNone sends everything in clear text. Only sensible on loopback.
	TLSNone TLSMode = iota
	// TLSStartTLS upgrades a plain connection with STARTTLS (RFC 3207) and refuses to
	// continue when the relay does not offer it.
	TLSStartTLS
	// TLSImplicit speaks TLS from the first byte (RFC 8314, usually port 465).
	TLSImplicit
)

// String returns the mode's spelling in CONSENTMAIL_SMTP_URL: none, starttls or tls.
func (m TLSMode) String() string {
	switch m {
	case TLSNone:
		return "none"
	case TLSStartTLS:
		return "starttls"
	case TLSImplicit:
		return "tls"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// AuthMethod selects the SMTP AUTH mechanism (RFC 4954) used when a Relay has a Username.
type AuthMethod string

const (
	// AuthAuto picks the strongest mechanism the relay offers that is safe on the
	// connection: SCRAM, CRAM-MD5, then (only under TLS) PLAIN or LOGIN.
	AuthAuto AuthMethod = "auto"
	// AuthPlain is PLAIN. go-mail refuses it on an unencrypted connection except to
	// localhost, 127.0.0.1 or ::1.
	AuthPlain AuthMethod = "plain"
	// AuthLogin is LOGIN, with the same restriction as AuthPlain.
	AuthLogin AuthMethod = "login"
	// AuthCRAMMD5 is CRAM-MD5.
	AuthCRAMMD5 AuthMethod = "cram-md5"
	// AuthSCRAMSHA256 is SCRAM-SHA-256.
	AuthSCRAMSHA256 AuthMethod = "scram-sha-256"
)

// Defaults applied by ParseRelays.
const (
	// DefaultMaxConns is a relay's connections at most. A campaign keeps each busy with
	// batches of ten transactions per round trip, so its rate from a relay far away is
	// about connections × 10 / round trip: from one 20 ms away, 1,660 messages/s on 4
	// connections, 8,700 on 32 (measured, README "Benchmarks"). 32 stays under Postfix's
	// default limit of 50 connections per client (smtpd_client_connection_count_limit).
	DefaultMaxConns = 32
)

// Relay is one SMTP server mail is handed to. Its printed forms (String, GoString,
// slog's LogValue) and its JSON encoding never contain the password.
type Relay struct {
	Host     string
	Port     int
	Username string
	Password string `json:"-"`
	TLS      TLSMode
	// Auth is the AUTH mechanism used when Username is set; empty means AuthAuto.
	Auth AuthMethod
	// MaxConns bounds the live connections to this relay (≥ 1).
	MaxConns int
	// Rate is the most messages per second sent through this relay; 0 is unlimited.
	Rate float64
}

// Addr returns host:port.
func (r Relay) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// String returns the relay as a CONSENTMAIL_SMTP_URL element with the password replaced
// by "xxxxx".
func (r Relay) String() string {
	u := url.URL{Scheme: "smtp", Host: r.Addr()}
	if r.Username != "" {
		if r.Password != "" {
			u.User = url.UserPassword(r.Username, "xxxxx")
		} else {
			u.User = url.User(r.Username)
		}
	}
	q := "tls=" + r.TLS.String() + "&max_conns=" + strconv.Itoa(r.MaxConns) +
		"&rate=" + strconv.FormatFloat(r.Rate, 'g', -1, 64)
	if r.Auth != "" && r.Auth != AuthAuto {
		q += "&auth=" + string(r.Auth)
	}
	u.RawQuery = q
	return u.String()
}

// GoString makes %#v as safe as %v.
func (r Relay) GoString() string { return "mailer.Relay(" + strconv.Quote(r.String()) + ")" }

// LogValue makes slog print the redacted String.
func (r Relay) LogValue() slog.Value { return slog.StringValue(r.String()) }

// ParseRelays parses CONSENTMAIL_SMTP_URL: one or more comma-separated
//
//	smtp://[user[:pass]@]host:port[?tls=none|starttls|tls][&max_conns=N][&rate=N][&auth=M]
//
// User and password are URL-escaped (a "@" in a password is %40). The port is required.
// tls defaults to none when host is loopback (localhost, 127.0.0.0/8, ::1) and to
// starttls otherwise; max_conns defaults to DefaultMaxConns; rate (messages per second
// for this relay, fractions allowed) defaults to 0, unlimited; auth is one of auto
// (default), plain, login, cram-md5, scram-sha-256 (an extension of the contract).
// Relays are tried in the order given. Every malformed part is reported; errors never
// contain the password.
func ParseRelays(s string) ([]Relay, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("smtp url: empty; want smtp://host:port")
	}
	parts := strings.Split(s, ",")
	relays := make([]Relay, 0, len(parts))
	for i, p := range parts {
		r, err := parseRelay(strings.TrimSpace(p))
		if err != nil {
			if len(parts) > 1 {
				return nil, fmt.Errorf("smtp url: relay %d: %w", i+1, err)
			}
			return nil, fmt.Errorf("smtp url: %w", err)
		}
		relays = append(relays, r)
	}
	return relays, nil
}

func parseRelay(s string) (Relay, error) {
	if s == "" {
		return Relay{}, errors.New("empty relay (stray comma?)")
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the whole URL, password included: report only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Relay{}, fmt.Errorf("malformed URL: %w", err)
	}
	if u.Scheme != "smtp" {
		if u.Scheme == "" {
			return Relay{}, errors.New("missing scheme; want smtp://host:port")
		}
		return Relay{}, fmt.Errorf("unknown scheme %q; want smtp", u.Scheme)
	}
	if u.Opaque != "" {
		return Relay{}, errors.New("missing //; want smtp://host:port")
	}
	if u.Path != "" && u.Path != "/" {
		return Relay{}, fmt.Errorf("unexpected path %q", u.Path)
	}
	if u.Fragment != "" {
		return Relay{}, errors.New("unexpected #fragment")
	}
	host := u.Hostname()
	if host == "" {
		return Relay{}, errors.New("missing host")
	}
	portStr := u.Port()
	if portStr == "" {
		return Relay{}, fmt.Errorf("missing port in %q; want host:port", u.Host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return Relay{}, fmt.Errorf("bad port %q; want 1-65535", portStr)
	}
	r := Relay{Host: host, Port: port, MaxConns: DefaultMaxConns, Auth: AuthAuto, TLS: TLSStartTLS}
	if isLoopback(host) {
		r.TLS = TLSNone
	}
	if u.User != nil {
		r.Username = u.User.Username()
		r.Password, _ = u.User.Password()
		if r.Username == "" {
			return Relay{}, errors.New("password given without a user")
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Relay{}, fmt.Errorf("malformed query: %w", err)
	}
	for key, vals := range q {
		if len(vals) != 1 {
			return Relay{}, fmt.Errorf("%s given %d times", key, len(vals))
		}
		v := vals[0]
		switch key {
		case "tls":
			switch v {
			case "none":
				r.TLS = TLSNone
			case "starttls":
				r.TLS = TLSStartTLS
			case "tls":
				r.TLS = TLSImplicit
			default:
				return Relay{}, fmt.Errorf("bad tls %q; want none, starttls or tls", v)
			}
		case "max_conns":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return Relay{}, fmt.Errorf("bad max_conns %q; want an integer 1-1000", v)
			}
			r.MaxConns = n
		case "rate":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f != f || f > 1e9 {
				return Relay{}, fmt.Errorf("bad rate %q; want messages per second ≥ 0 (0 = unlimited)", v)
			}
			r.Rate = f
		case "auth":
			switch m := AuthMethod(strings.ToLower(v)); m {
			case AuthAuto, AuthPlain, AuthLogin, AuthCRAMMD5, AuthSCRAMSHA256:
				r.Auth = m
			default:
				return Relay{}, fmt.Errorf("bad auth %q; want auto, plain, login, cram-md5 or scram-sha-256", v)
			}
		default:
			return Relay{}, fmt.Errorf("unknown parameter %q; want tls, max_conns, rate or auth", key)
		}
	}
	return r, nil
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
