package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
)

// maxBody bounds every JSON request body.
const maxBody = 1 << 20

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

// bindJSON decodes the body strictly into dst: unknown fields, wrong types,
// trailing data and oversized bodies are a 400 that names the problem.
func bindJSON(c *gin.Context, dst any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return true
	}
	var (
		syntax  *json.SyntaxError
		typ     *json.UnmarshalTypeError
		tooBig  *http.MaxBytesError
		badTime *time.ParseError
		message = err.Error()
		code    = "invalid_json"
	)
	switch {
	case errors.Is(err, io.EOF):
		message = "request body must be a JSON object"
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		message = "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")
	case errors.As(err, &typ):
		code = "invalid_type"
		message = fmt.Sprintf("field %q must be of type %s", typ.Field, typ.Type.String())
		if typ.Field == "" {
			message = "request body must be a JSON object"
		}
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		code = "unknown_field"
		message = strings.TrimPrefix(err.Error(), "json: ")
	case errors.As(err, &badTime):
		code = "invalid_time"
		message = fmt.Sprintf("%q is not an RFC 3339 time like 2026-01-02T15:04:05Z", badTime.Value)
	case errors.As(err, &tooBig):
		code = "body_too_large"
		message = fmt.Sprintf("request body exceeds %d bytes", maxBody)
	}
	fail(c, http.StatusBadRequest, code, "%s", message)
	return false
}

// invalid answers 400 for a request that parsed but breaks a rule.
func invalid(c *gin.Context, format string, args ...any) {
	fail(c, http.StatusBadRequest, "invalid_request", format, args...)
}

// pathID parses the :id path parameter.
func pathID(c *gin.Context) (uuid.UUID, bool) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		fail(c, http.StatusBadRequest, "invalid_id", "id %q is not a UUID", c.Param("id"))
		return uuid.Nil, false
	}
	return id, true
}
