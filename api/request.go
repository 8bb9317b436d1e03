package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
)

// defaultRange is the recordings window when from/to are not given.
const defaultRange = 24 * time.Hour

// listBody is every list response: {"items":[…],"next_cursor":"…"}.
type listBody[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// pageParams reads limit and cursor.
func pageParams(c *gin.Context) (store.Page, bool) {
	p := store.Page{Limit: store.DefaultPageLimit, Cursor: c.Query("cursor")}
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxPageLimit {
			fail(c, http.StatusBadRequest, "invalid_limit", "limit must be an integer from 1 to %d", store.MaxPageLimit)
			return p, false
		}
		p.Limit = n
	}
	return p, true
}

// timeRange reads from and to (RFC 3339); to defaults to now, from to
// defaultRange before to.
func timeRange(c *gin.Context) (from, to time.Time, ok bool) {
	to = time.Now().UTC()
	parse := func(name string, dst *time.Time) bool {
		v, present := c.GetQuery(name)
		if !present {
			return true
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			fail(c, http.StatusBadRequest, "invalid_time", "%s must be an RFC 3339 time like 2026-01-02T15:04:05Z", name)
			return false
		}
		*dst = t.UTC()
		return true
	}
	if !parse("to", &to) {
		return from, to, false
	}
	from = to.Add(-defaultRange)
	if !parse("from", &from) {
		return from, to, false
	}
	if !from.Before(to) {
		fail(c, http.StatusBadRequest, "invalid_range", "from must be before to")
		return from, to, false
	}
	return from, to, true
}

// maxBody bounds every JSON request body.
const maxBody = 1 << 20

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

// pathID parses the :id path parameter.
func pathID(c *gin.Context) (uuid.UUID, bool) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		fail(c, http.StatusBadRequest, "invalid_id", "id %q is not a UUID", c.Param("id"))
		return uuid.Nil, false
	}
	return id, true
}
