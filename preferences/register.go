package preferences

import (
	"fmt"
	"strings"
	"time"
)

// Register is the record of processing activities (GDPR art. 30), built from the
// lists: one activity per list.
type Register struct {
	GeneratedAt time.Time `json:"generated_at"`
	Controller  string    `json:"controller"`
	// Contact is where people and authorities write to the controller or its data
	// protection officer (CONSENTMAIL_CONTACT).
	Contact    string `json:"contact"`
	PrivacyURL string `json:"privacy_url,omitempty"`
	// Processors are who processes the data on the controller's behalf: the email
	// relays, by host.
	Processors []string   `json:"processors"`
	Activities []Activity `json:"activities"`
	// DataKept are the records kept beyond the lists' activities.
	DataKept []DataKept `json:"data_kept"`
	// SecurityMeasures are the technical measures every activity benefits from.
	SecurityMeasures []string `json:"security_measures"`
}

// Activity is one processing activity of the register.
type Activity struct {
	List           string   `json:"list"`
	Name           string   `json:"name"`
	Purpose        string   `json:"purpose"`
	LegalBasis     string   `json:"legal_basis"`
	DataCategories []string `json:"data_categories"`
	DataSubjects   string   `json:"data_subjects"`
	Recipients     []string `json:"recipients"`
	RetentionDays  int      `json:"retention_days"`
	Transfers      string   `json:"transfers_outside_eu"`
	ConsentVersion string   `json:"consent_version"`
}

// DataKept is a record the service keeps outside any one list: what it holds, why, on
// which legal basis and for how long.
type DataKept struct {
	Name       string `json:"name"`
	Content    string `json:"content"`
	Purpose    string `json:"purpose"`
	LegalBasis string `json:"legal_basis"`
	Retention  string `json:"retention"`
}

// RegisterSite is what the register says about the company: its name, privacy
// notice, contact (controller or DPO) and the hosts of its email relays (never their
// credentials).
type RegisterSite struct {
	Company    string
	PrivacyURL string
	Contact    string
	RelayHosts []string
}

// dataKept are the records every deployment keeps besides its lists.
var dataKept = []DataKept{
	{Name: "suppression list",
		Content: "a keyed hash (HMAC-SHA256) of each erased address: pseudonymous data, not anonymous, since whoever " +
			"holds the key and the address can recognise it; no address is stored in clear",
		Purpose:    "honour erasures: an erased address is not subscribed again, by an import or by anyone typing it, without a new double opt-in",
		LegalBasis: "legal obligation (GDPR art. 6(1)(c), art. 17) and legitimate interest (art. 6(1)(f))",
		Retention:  "until the address is confirmed again by double opt-in"},
	{Name: "consent ledger",
		Content: "every consent, confirmation and withdrawal with time, lists and the consent text shown; IP address and " +
			"user agent sealed with the subscriber's key, unreadable once the subscriber is erased",
		Purpose:    "prove consent and its withdrawal (GDPR art. 7(1))",
		LegalBasis: "legal obligation (GDPR art. 6(1)(c), art. 7(1))",
		Retention:  "kept; its personal fields are destroyed with the subscriber's key at erasure"},
}

// securityMeasures are what the service does for every activity.
var securityMeasures = []string{
	"personal data encrypted at rest with a key per subscriber (AES-256-GCM), keys derived from a root secret (HKDF)",
	"erasure by destroying the subscriber's key (crypto-shredding) and the key-encryption key that wrapped it, so that no old copy of it in the data file can be opened",
	"consent and every withdrawal recorded in an append-only, hash-chained ledger",
	"double opt-in confirmed by a deliberate click; signed, expiring links",
	"API keys stored as hashes, with roles; addresses masked for marketers and viewers; every unmasked read logged",
	"no tracking without the subscriber's consent",
}

// BuildRegister builds the register from every list.
func (s *Store) BuildRegister(site RegisterSite) *Register {
	r := &Register{GeneratedAt: s.now().UTC(), Controller: site.Company, Contact: site.Contact, PrivacyURL: site.PrivacyURL,
		Processors: []string{}, Activities: []Activity{}, DataKept: dataKept, SecurityMeasures: securityMeasures}
	if r.Controller == "" {
		r.Controller = "(set CONSENTMAIL_COMPANY_NAME)"
	}
	if r.Contact == "" {
		r.Contact = "(set CONSENTMAIL_CONTACT)"
	}
	recipients := []string{ProcessingRecipients[0]}
	for _, h := range site.RelayHosts {
		p := h + " (email relay, processor: delivers each message)"
		r.Processors = append(r.Processors, p)
		recipients = append(recipients, p)
	}
	if len(site.RelayHosts) == 0 {
		recipients = ProcessingRecipients
	}
	for _, l := range s.AllLists() {
		r.Activities = append(r.Activities, Activity{List: l.ID, Name: l.Name, Purpose: l.Purpose,
			LegalBasis: LegalBasisConsent, DataSubjects: "people who subscribed to " + l.Name,
			DataCategories: []string{"email address", "name (optional)", "language", "custom attributes given at signup",
				"proof of consent: time, IP address, user agent, consent text shown", "send results; opens and clicks only with consent"},
			Recipients: recipients, RetentionDays: l.RetentionDays, Transfers: "none by the service itself",
			ConsentVersion: l.ConsentVersion})
	}
	return r
}

// Markdown renders the register for people.
func (r *Register) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Record of processing activities\n\nController: %s  \nContact (controller or DPO): %s  \nGenerated: %s\n",
		r.Controller, r.Contact, r.GeneratedAt.Format(time.RFC3339))
	if r.PrivacyURL != "" {
		fmt.Fprintf(&b, "Privacy notice: %s\n", r.PrivacyURL)
	}
	if len(r.Processors) > 0 {
		b.WriteString("\n## Processors\n\n")
		for _, p := range r.Processors {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	for _, a := range r.Activities {
		fmt.Fprintf(&b, "\n## %s (`%s`)\n\n", a.Name, a.List)
		fmt.Fprintf(&b, "- **Purpose:** %s\n- **Legal basis:** %s\n- **Data subjects:** %s\n- **Data categories:** %s\n"+
			"- **Recipients:** %s\n- **Retention:** %d days without activity\n- **Transfers outside the EU:** %s\n"+
			"- **Consent text version:** %s\n", a.Purpose, a.LegalBasis, a.DataSubjects, strings.Join(a.DataCategories, "; "),
			strings.Join(a.Recipients, "; "), a.RetentionDays, a.Transfers, a.ConsentVersion)
	}
	b.WriteString("\n## Other data kept\n\n")
	for _, d := range r.DataKept {
		fmt.Fprintf(&b, "- **%s:** %s. Purpose: %s. Legal basis: %s. Retention: %s.\n", d.Name, d.Content, d.Purpose,
			d.LegalBasis, d.Retention)
	}
	b.WriteString("\n## Security measures\n\n")
	for _, m := range r.SecurityMeasures {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	return b.String()
}
