package campaigns

import (
	"net/netip"
	"strings"
	"time"
)

// Opens and clicks that are not people (issue 11, point 8).
//
// Some hits on the open pixel and the click links are made by machines, not by the
// person the message went to. They are counted apart, in Stats.MachineOpens and
// Stats.MachineClicks, so that Opens and Clicks mean what a marketer thinks they mean.
// The service cannot ask anyone on the internet, so it goes by documented, local
// signs (MachineHit); a hit none of them matches is a person's.
//
// Proxies that fetch images only when the person opens the message (Gmail's
// GoogleImageProxy, Yahoo's YahooMailProxy) are people: the open is real. Gmail then
// caches the image, so later opens of the same message are not seen; Opens count
// hits, never unique people anyway.

// Hit is what the tracking routes know of one hit when they classify it.
type Hit struct {
	Click     bool       // a click link, not the open pixel
	Method    string     // HTTP method
	UserAgent string     // User-Agent header, as sent
	IP        netip.Addr // the client address (after the trusted proxy header); invalid when unknown
	// SinceSent is the time from the making of the message (its tracking token was
	// signed then, to the second) to the hit; negative when unknown.
	SinceSent time.Duration
	// SincePrevClick is the time since the previous click on another link of the same
	// message; negative when there was none lately.
	SincePrevClick time.Duration
}

// The reasons MachineHit gives.
const (
	MachineHead         = "head"                // a HEAD request: link checkers, previews
	MachineAppleProxy   = "apple-privacy-proxy" // Apple Mail Privacy Protection fetches every image on delivery
	MachineScannerAgent = "scanner-agent"       // a security scanner or HTTP library says who it is
	MachineOnDelivery   = "click-on-delivery"   // a click within ClickOnDelivery of the message being made
	MachineClickBurst   = "click-burst"         // another link of the same message clicked within ClickBurst
)

// ClickOnDelivery and ClickBurst are the times under which a click is a scanner's:
// gateways (Microsoft Safe Links, Mimecast, Proofpoint…) follow every link as the
// message arrives, and follow them all within a second; a person takes longer to open
// a message and to read it.
const (
	ClickOnDelivery = 3 * time.Second
	ClickBurst      = time.Second
)

// appleProxyNets are the addresses Apple Mail Privacy Protection fetches from: Apple
// owns 17.0.0.0/8 and its image proxy egresses from it. (Private Relay's egress
// ranges, on other networks, are browsing, not mail, and are left out.)
var appleProxyNets = []netip.Prefix{netip.MustParsePrefix("17.0.0.0/8")}

// appleProxyAgent is the whole User-Agent of Apple's image proxy: no platform, no
// engine, no browser token (Apple Mail itself sends "Mozilla/5.0 (Macintosh; …)").
const appleProxyAgent = "Mozilla/5.0"

// scannerAgents are lower-case substrings of the User-Agent of security scanners,
// link previews and HTTP libraries that announce themselves.
var scannerAgents = []string{
	"barracuda", "mimecast", "proofpoint", "bingpreview", "safelinks", "ironport", "cisco",
	"symantec", "messagelabs", "trend micro", "trendmicro", "forcepoint", "fortiguard", "sophos",
	"zscaler", "appriver", "spamtitan", "mailguard", "hornetsecurity", "libredtail",
	"python-requests", "python-urllib", "curl/", "wget/", "okhttp", "headlesschrome", "bot/", "spider", "crawler",
}

// MachineHit tells whether h was made by a machine: it returns the first rule that
// says so (one of the Machine… constants), or "" for a person.
func MachineHit(h Hit) string {
	if h.Method == "HEAD" {
		return MachineHead
	}
	ua := strings.TrimSpace(h.UserAgent)
	if !h.Click && (ua == appleProxyAgent || inNets(h.IP, appleProxyNets)) {
		return MachineAppleProxy
	}
	lower := strings.ToLower(ua)
	for _, s := range scannerAgents {
		if strings.Contains(lower, s) {
			return MachineScannerAgent
		}
	}
	if h.Click && h.SinceSent >= 0 && h.SinceSent < ClickOnDelivery {
		return MachineOnDelivery
	}
	if h.Click && h.SincePrevClick >= 0 && h.SincePrevClick < ClickBurst {
		return MachineClickBurst
	}
	return ""
}

func inNets(ip netip.Addr, nets []netip.Prefix) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
