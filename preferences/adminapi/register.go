package adminapi

import "github.com/gofiber/fiber/v2"

// register serves GET /api/v1/register (JSON, or ?format=md).
func (h *API) register(c *fiber.Ctx) error {
	r := h.store.BuildRegister(h.site)
	if c.Query("format") == "md" {
		c.Set(fiber.HeaderContentType, "text/markdown; charset=utf-8")
		return c.SendString(r.Markdown())
	}
	return c.JSON(r)
}
