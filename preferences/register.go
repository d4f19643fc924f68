package preferences

import (
	"fmt"
	"strings"
	"time"
)

// Register is the record of processing activities (GDPR art. 30), built from the
// lists: one activity per list.
type Register struct {
	GeneratedAt time.Time  `json:"generated_at"`
	Controller  string     `json:"controller"`
	PrivacyURL  string     `json:"privacy_url,omitempty"`
	Activities  []Activity `json:"activities"`
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

// RegisterSite is what the register says about the company.
type RegisterSite struct {
	Company    string
	PrivacyURL string
}

// securityMeasures are what the service does for every activity.
var securityMeasures = []string{
	"personal data encrypted at rest with a key per subscriber (AES-256-GCM), keys derived from a root secret (HKDF)",
	"erasure by destroying the subscriber's key (crypto-shredding), including old copies in the data file",
	"consent and every withdrawal recorded in an append-only, hash-chained ledger",
	"double opt-in confirmed by a deliberate click; signed, expiring links",
	"API keys stored as hashes, with roles; addresses masked for marketers and viewers; every unmasked read logged",
	"no tracking without the subscriber's consent",
}

// BuildRegister builds the register from every list.
func (s *Store) BuildRegister(site RegisterSite) *Register {
	r := &Register{GeneratedAt: s.now().UTC(), Controller: site.Company, PrivacyURL: site.PrivacyURL,
		Activities: []Activity{}, SecurityMeasures: securityMeasures}
	if r.Controller == "" {
		r.Controller = "(set CONSENTMAIL_COMPANY_NAME)"
	}
	for _, l := range s.AllLists() {
		r.Activities = append(r.Activities, Activity{List: l.ID, Name: l.Name, Purpose: l.Purpose,
			LegalBasis: LegalBasisConsent, DataSubjects: "people who subscribed to " + l.Name,
			DataCategories: []string{"email address", "name (optional)", "language", "custom attributes given at signup",
				"proof of consent: time, IP address, user agent, consent text shown", "send results; opens and clicks only with consent"},
			Recipients: ProcessingRecipients, RetentionDays: l.RetentionDays, Transfers: "none by the service itself",
			ConsentVersion: l.ConsentVersion})
	}
	return r
}

// Markdown renders the register for people.
func (r *Register) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Record of processing activities\n\nController: %s  \nGenerated: %s\n", r.Controller,
		r.GeneratedAt.Format(time.RFC3339))
	if r.PrivacyURL != "" {
		fmt.Fprintf(&b, "Privacy notice: %s\n", r.PrivacyURL)
	}
	for _, a := range r.Activities {
		fmt.Fprintf(&b, "\n## %s (`%s`)\n\n", a.Name, a.List)
		fmt.Fprintf(&b, "- **Purpose:** %s\n- **Legal basis:** %s\n- **Data subjects:** %s\n- **Data categories:** %s\n"+
			"- **Recipients:** %s\n- **Retention:** %d days without activity\n- **Transfers outside the EU:** %s\n"+
			"- **Consent text version:** %s\n", a.Purpose, a.LegalBasis, a.DataSubjects, strings.Join(a.DataCategories, "; "),
			strings.Join(a.Recipients, "; "), a.RetentionDays, a.Transfers, a.ConsentVersion)
	}
	b.WriteString("\n## Security measures\n\n")
	for _, m := range r.SecurityMeasures {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	return b.String()
}
