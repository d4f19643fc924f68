package httperr

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// BindJSON decodes a JSON request body into v: 415 for another content type, 400 for
// a body that does not decode.
func BindJSON(c *fiber.Ctx, v any) error {
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationJSON) {
		return New(fiber.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json")
	}
	if err := c.BodyParser(v); err != nil {
		return New(fiber.StatusBadRequest, "bad_json", "body is not valid JSON for this endpoint")
	}
	return nil
}

// Limit reads ?limit= of a list endpoint: 1 to 1000, 100 when absent, 422 otherwise.
func Limit(c *fiber.Ctx) (int, error) {
	s := c.Query("limit")
	if s == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		return 0, Invalid(map[string]string{"limit": "must be between 1 and 1000"})
	}
	return n, nil
}

// Page writes one page of a list of things in the contract's shape,
// {"items": […], "next_cursor": "…"}, with an empty list as [] (never null).
func Page[T any](c *fiber.Ctx, items []T, next string) error {
	if items == nil {
		items = []T{}
	}
	return c.JSON(fiber.Map{"items": items, "next_cursor": next})
}
