// Package httperr gives every JSON endpoint of consentmail the contract's error shape:
//
//	{"error": {"code": "snake_case", "message": "human text", "fields": {"email": "..."}}}
//
// Handlers return an *Error (or any error); Handler, installed as Fiber's ErrorHandler,
// writes it. Status codes are chosen here, at the HTTP edge, never in the domain packages.
package httperr

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"
)

// Error is an API error with an HTTP status and the contract's body.
type Error struct {
	Status  int               `json:"-"`
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Error returns the message.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an Error with the given status, code and message.
func New(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// Invalid returns a 422 validation_failed error naming the bad fields.
func Invalid(fields map[string]string) *Error {
	return &Error{Status: fiber.StatusUnprocessableEntity, Code: "validation_failed",
		Message: "some fields are invalid", Fields: fields}
}

// NotFound returns a 404 not_found error.
func NotFound(what string) *Error {
	return New(fiber.StatusNotFound, "not_found", what+" not found")
}

// Write sends err as the contract's JSON error body.
func Write(c *fiber.Ctx, err *Error) error {
	return c.Status(err.Status).JSON(fiber.Map{"error": err})
}

// Handler returns a Fiber ErrorHandler that renders *Error values as they are, maps
// Fiber's own errors (404 route, 405, 413 body too large…) to the same shape, and hides
// every other error behind a 500 that is logged.
func Handler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		return Write(c, From(c, err, log))
	}
}

// From returns err as an *Error: itself when it is one, Fiber's errors with their
// status, and any other error as a 500 internal error, logged with its request.
func From(c *fiber.Ctx, err error, log *slog.Logger) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return &Error{Status: fe.Code, Code: codeFor(fe.Code), Message: fe.Message}
	}
	log.Error("request failed", "method", c.Method(), "route", c.Route().Path, "err", err)
	return New(fiber.StatusInternalServerError, "internal", "internal error")
}

func codeFor(status int) string {
	switch status {
	case fiber.StatusNotFound:
		return "not_found"
	case fiber.StatusMethodNotAllowed:
		return "method_not_allowed"
	case fiber.StatusRequestEntityTooLarge:
		return "too_large"
	case fiber.StatusBadRequest:
		return "bad_request"
	case fiber.StatusUnauthorized:
		return "unauthorized"
	case fiber.StatusForbidden:
		return "forbidden"
	case fiber.StatusTooManyRequests:
		return "rate_limited"
	case fiber.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	}
	if status >= 500 {
		return "internal"
	}
	return "error"
}
