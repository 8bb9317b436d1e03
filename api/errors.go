package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/opennvr/vms/store"
)

// ErrorBody is the JSON error model: {"error":{"code","message"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail names what went wrong for programs (Code) and people (Message).
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// fail answers with the error model and stops the handler chain.
func fail(c *gin.Context, status int, code, format string, args ...any) {
	c.AbortWithStatusJSON(status, ErrorBody{ErrorDetail{Code: code, Message: fmt.Sprintf(format, args...)}})
}

// failErr maps an error from a lower layer to a response: known errors get
// their 4xx, anything else is logged and answered with an opaque 500.
func failErr(c *gin.Context, what string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(c, http.StatusNotFound, "not_found", "%s not found", what)
	case errors.Is(err, store.ErrConflict):
		fail(c, http.StatusConflict, "conflict", "%s is in use", what)
	case errors.Is(err, store.ErrBadCursor):
		fail(c, http.StatusBadRequest, "invalid_cursor", "cursor is not one this API returned")
	case errors.Is(err, store.ErrNoCapacity):
		fail(c, http.StatusServiceUnavailable, "no_capacity", "no NVR instance has free capacity")
	default:
		slog.ErrorContext(c.Request.Context(), "request failed", "route", c.FullPath(), "what", what, "err", err)
		fail(c, http.StatusInternalServerError, "internal", "internal error")
	}
}

// invalid answers 400 for a request that parsed but breaks a rule.
func invalid(c *gin.Context, format string, args ...any) {
	fail(c, http.StatusBadRequest, "invalid_request", format, args...)
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}
