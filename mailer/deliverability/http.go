package deliverability

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences/httperr"
)

// runTimeout bounds one run of the checks behind the API.
const runTimeout = 30 * time.Second

// Handler serves GET /api/v1/deliverability.
type Handler struct {
	cfg   Config
	dns   string
	admin fiber.Handler
}

// NewHandler returns the handler of the checks of cfg, asking the DNS server dns (""
// for the system's); admin is the middleware that admits administrators only.
func NewHandler(cfg Config, dns string, admin fiber.Handler) *Handler {
	return &Handler{cfg: cfg, dns: dns, admin: admin}
}

// Routes mounts GET /api/v1/deliverability on r: the report as JSON,
// {"ok": bool, "dns_server": "…", "findings": [{"check", "subject", "status",
// "message", "fix"}]}, ok being false when any finding fails.
func (h *Handler) Routes(r fiber.Router) {
	r.Get("/api/v1/deliverability", h.admin, h.get)
}

func (h *Handler) get(c *fiber.Ctx) error {
	res, err := NewResolver(h.dns)
	if err != nil {
		return httperr.New(fiber.StatusServiceUnavailable, "dns_unavailable", err.Error())
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), runTimeout)
	defer cancel()
	rep := New(res, h.cfg).Run(ctx)
	return c.JSON(fiber.Map{"ok": !rep.Failed(), "dns_server": rep.DNSServer, "findings": rep.Findings})
}
