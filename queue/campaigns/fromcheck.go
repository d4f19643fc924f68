package campaigns

// FromCheck says whether campaign mail may be sent from an address: nil, or an error
// whose text tells the marketer why not (the sender's DKIM keys cover no domain of it,
// so DMARC alignment would fail). cmd passes the sender's; nil accepts every address.
type FromCheck func(from string) error

// fromRefused returns a *FieldError on "from" when the from check refuses from, the
// From a campaign would be sent with: given in the campaign (given), else the from of
// one of its lists (fromList), else the engine's DefaultFrom.
func (e *Engine) fromRefused(from string, given, fromList bool) error {
	if e.cfg.CheckFrom == nil {
		return nil
	}
	err := e.cfg.CheckFrom(from)
	if err == nil {
		return nil
	}
	why := err.Error()
	switch {
	case given:
	case fromList:
		why = "the from of its list, " + from + ", is refused: " + why
	default:
		why = "the default from, " + from + ", is refused: " + why
	}
	return &FieldError{Field: "from", Reason: why}
}
