package mailer_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"consentmail/mailer"
)

func TestParseRelays(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []mailer.Relay
		wantErr string // substring; empty means success
	}{
		{
			name: "loopback defaults to tls=none",
			in:   "smtp://127.0.0.1:1025",
			want: []mailer.Relay{{Host: "127.0.0.1", Port: 1025, TLS: mailer.TLSNone, Auth: mailer.AuthAuto, MaxConns: mailer.DefaultMaxConns}},
		},
		{
			name: "localhost and ::1 are loopback",
			in:   "smtp://localhost:25, smtp://[::1]:25",
			want: []mailer.Relay{
				{Host: "localhost", Port: 25, TLS: mailer.TLSNone, Auth: mailer.AuthAuto, MaxConns: mailer.DefaultMaxConns},
				{Host: "::1", Port: 25, TLS: mailer.TLSNone, Auth: mailer.AuthAuto, MaxConns: mailer.DefaultMaxConns},
			},
		},
		{
			name: "remote defaults to starttls",
			in:   "smtp://mail.example.org:587",
			want: []mailer.Relay{{Host: "mail.example.org", Port: 587, TLS: mailer.TLSStartTLS, Auth: mailer.AuthAuto, MaxConns: mailer.DefaultMaxConns}},
		},
		{
			name: "everything, escaped credentials",
			in:   "smtp://us%40er:p%40ss%3Aw%2Cord@mail.example.org:465?tls=tls&max_conns=16&rate=12.5&auth=plain",
			want: []mailer.Relay{{
				Host: "mail.example.org", Port: 465, Username: "us@er", Password: "p@ss:w,ord",
				TLS: mailer.TLSImplicit, Auth: mailer.AuthPlain, MaxConns: 16, Rate: 12.5,
			}},
		},
		{
			name: "two relays in order, user without password",
			in:   "smtp://a.example:25?tls=none&rate=0,smtp://bob@b.example:2525?tls=starttls",
			want: []mailer.Relay{
				{Host: "a.example", Port: 25, TLS: mailer.TLSNone, Auth: mailer.AuthAuto, MaxConns: mailer.DefaultMaxConns},
				{Host: "b.example", Port: 2525, Username: "bob", TLS: mailer.TLSStartTLS, Auth: mailer.AuthAuto, MaxConns: mailer.DefaultMaxConns},
			},
		},
		{name: "empty", in: " ", wantErr: "empty"},
		{name: "stray comma", in: "smtp://a:25,", wantErr: "relay 2: empty relay"},
		{name: "unknown scheme", in: "smtps://a:465", wantErr: `unknown scheme "smtps"`},
		{name: "no scheme", in: "a.example:25", wantErr: "scheme"},
		{name: "missing port", in: "smtp://a.example", wantErr: "missing port"},
		{name: "bad port", in: "smtp://a.example:0", wantErr: "bad port"},
		{name: "port too big", in: "smtp://a.example:70000", wantErr: "bad port"},
		{name: "non-numeric port", in: "smtp://a.example:smtp", wantErr: "port"},
		{name: "missing host", in: "smtp://:25", wantErr: "missing host"},
		{name: "path", in: "smtp://a.example:25/x", wantErr: "unexpected path"},
		{name: "unknown key", in: "smtp://a.example:25?tsl=none", wantErr: `unknown parameter "tsl"`},
		{name: "bad tls", in: "smtp://a.example:25?tls=ssl", wantErr: `bad tls "ssl"`},
		{name: "bad max_conns", in: "smtp://a.example:25?max_conns=0", wantErr: "bad max_conns"},
		{name: "non-numeric max_conns", in: "smtp://a.example:25?max_conns=many", wantErr: "bad max_conns"},
		{name: "negative rate", in: "smtp://a.example:25?rate=-1", wantErr: "bad rate"},
		{name: "bad rate", in: "smtp://a.example:25?rate=fast", wantErr: "bad rate"},
		{name: "repeated key", in: "smtp://a.example:25?rate=1&rate=2", wantErr: "rate given 2 times"},
		{name: "bad auth", in: "smtp://u:p@a.example:25?auth=xoauth", wantErr: "bad auth"},
		{name: "password without user", in: "smtp://:secret@a.example:25", wantErr: "without a user"},
		{name: "bad escape hides password", in: "smtp://u:s3cr%zzet@a.example:25", wantErr: "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mailer.ParseRelays(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseRelays(%q) = %v, want error containing %q", tc.in, got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParseRelays(%q) error = %q, want it to contain %q", tc.in, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "s3cr") {
					t.Errorf("error %q reveals the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRelays(%q): %v", tc.in, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d relays, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("relay %d:\n got %+v (password %q)\nwant %+v (password %q)", i, got[i], got[i].Password, tc.want[i], tc.want[i].Password)
				}
			}
		})
	}
}

func TestRelayNeverPrintsPassword(t *testing.T) {
	rs, err := mailer.ParseRelays("smtp://ana:hunter2@mail.example.org:587")
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "relay", r, "relays", rs)
	j, _ := json.Marshal(r)
	for _, s := range []string{
		r.String(), fmt.Sprint(r), fmt.Sprintf("%v %+v %#v %s %q", r, r, r, r, r),
		fmt.Sprint(rs), fmt.Sprintf("%+v", rs), logged.String(), string(j),
	} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password printed in %q", s)
		}
	}
	if want := "smtp://ana:xxxxx@mail.example.org:587?tls=starttls&max_conns=32&rate=0"; r.String() != want {
		t.Errorf("String() = %q, want %q", r.String(), want)
	}
}

func ExampleParseRelays() {
	relays, err := mailer.ParseRelays("smtp://news%40example.org:s3cret@mail.example.org:587?max_conns=8&rate=50,smtp://127.0.0.1:1025")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range relays {
		fmt.Println(r)
	}
	_, err = mailer.ParseRelays("smtp://mail.example.org?tls=ssl")
	fmt.Println(err)
	// Output:
	// smtp://news%40example.org:xxxxx@mail.example.org:587?tls=starttls&max_conns=8&rate=50
	// smtp://127.0.0.1:1025?tls=none&max_conns=32&rate=0
	// smtp url: missing port in "mail.example.org"; want host:port
}
