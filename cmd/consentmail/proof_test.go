package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"consentmail/mailer/smtptest"
)

// TestRegisterNamesControllerContactProcessorsAndDataKept: the register (Art. 30)
// names the controller, the contact of CONSENTMAIL_CONTACT, the relays as processors
// (their hosts, never their credentials) and the suppression list among the data
// kept, in JSON and in Markdown.
func TestRegisterNamesControllerContactProcessorsAndDataKept(t *testing.T) {
	sink := smtptest.New(t)
	env := serveEnv(t.TempDir(), "smtp://mailuser:relay-s3cret@"+sink.Addr()+"?tls=none")
	env["CONSENTMAIL_COMPANY_NAME"] = "Acme SAS"
	env["CONSENTMAIL_CONTACT"] = "dpo@acme.example"
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")

	var reg struct {
		Controller string   `json:"controller"`
		Contact    string   `json:"contact"`
		Processors []string `json:"processors"`
		Activities []struct {
			Recipients []string `json:"recipients"`
		} `json:"activities"`
		DataKept []struct {
			Name    string `json:"name"`
			Content string `json:"content"`
		} `json:"data_kept"`
	}
	if st := c.admin("GET", "/api/v1/register", "", &reg); st != http.StatusOK {
		t.Fatalf("register: %d", st)
	}
	if reg.Controller != "Acme SAS" || reg.Contact != "dpo@acme.example" {
		t.Errorf("controller %q, contact %q; want Acme SAS and dpo@acme.example", reg.Controller, reg.Contact)
	}
	if len(reg.Processors) != 1 || !strings.HasPrefix(reg.Processors[0], sink.Host()+" ") {
		t.Errorf("processors = %q, want the relay's host %s", reg.Processors, sink.Host())
	}
	if len(reg.Activities) != 1 || !strings.Contains(strings.Join(reg.Activities[0].Recipients, ";"), sink.Host()) {
		t.Errorf("activities = %+v, want the relay among the recipients", reg.Activities)
	}
	var suppression string
	for _, d := range reg.DataKept {
		if d.Name == "suppression list" {
			suppression = d.Content
		}
	}
	if !strings.Contains(suppression, "pseudonymous") {
		t.Errorf("data kept = %+v, want the suppression list, pseudonymous", reg.DataKept)
	}
	st, md := c.do("GET", "/api/v1/register?format=md", "", "", "Authorization", "Bearer "+testAdminKey)
	for _, want := range []string{"Acme SAS", "dpo@acme.example", "## Processors", sink.Host(), "suppression list"} {
		if st != 200 || !strings.Contains(md, want) {
			t.Errorf("markdown register (%d) lacks %q:\n%s", st, want, md)
		}
	}
	_, all := c.do("GET", "/api/v1/register", "", "", "Authorization", "Bearer "+testAdminKey)
	if strings.Contains(all+md, "relay-s3cret") || strings.Contains(all+md, "mailuser") {
		t.Error("the register shows the relay's credentials")
	}
}

func TestContactMustBeAnAddress(t *testing.T) {
	env := serveEnv(t.TempDir(), "smtp://127.0.0.1:2525?tls=none")
	env["CONSENTMAIL_CONTACT"] = "not an address"
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"consentmail", "serve"}, environ(env), &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error()+stderr.String(), "CONSENTMAIL_CONTACT") {
		t.Errorf("run with a malformed contact: %v %s, want an error naming CONSENTMAIL_CONTACT", err, stderr.String())
	}
}
