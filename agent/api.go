package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// maxRequestBody bounds a request body; a start request is a token and a URL.
const maxRequestBody = 64 << 10

// resolveTimeout bounds the control-plane round trip of a start request.
const resolveTimeout = 15 * time.Second

// NewHandler serves the agent's local HTTP API:
//
//	POST   /v1/streams            {"token", "camera_url"?} → 201 StreamInfo
//	GET    /v1/streams            → 200 {"items": [StreamInfo]}
//	DELETE /v1/streams/{session}  → 204
//
// Errors are {"error":{"code","message"}}.
func NewHandler(m *Manager, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &handler{m: m, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/streams", h.start)
	mux.HandleFunc("GET /v1/streams", h.list)
	mux.HandleFunc("DELETE /v1/streams/{session}", h.stop)
	// The catch-alls keep 404 and 405 answers in the JSON error shape.
	mux.HandleFunc("/v1/streams", methodNotAllowed)
	mux.HandleFunc("/v1/streams/{session}", methodNotAllowed)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return mux
}

type handler struct {
	m   *Manager
	log *slog.Logger
}

type startRequest struct {
	Token     string `json:"token"`
	CameraURL string `json:"camera_url"`
}

func (h *handler) start(w http.ResponseWriter, r *http.Request) {
	var req startRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body: "+jsonProblem(err))
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body: trailing data")
		return
	}
	if req.Token == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "token is required")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), resolveTimeout)
	defer cancel()
	info, err := h.m.Start(ctx, req.Token, req.CameraURL)
	switch {
	case err == nil:
		writeJSON(w, http.StatusCreated, info)
	case errors.Is(err, errBadCameraURL):
		writeError(w, http.StatusBadRequest, "bad_request", "camera_url is not a valid URL")
	case errors.Is(err, ErrInvalidToken):
		writeError(w, http.StatusUnauthorized, "invalid_token", "the stream token is invalid or expired")
	case errors.Is(err, ErrCameraMismatch):
		writeError(w, http.StatusForbidden, "camera_mismatch", ErrCameraMismatch.Error())
	case errors.Is(err, ErrStreamExists):
		writeError(w, http.StatusConflict, "stream_exists", ErrStreamExists.Error())
	case errors.Is(err, ErrManagerClosed):
		writeError(w, http.StatusServiceUnavailable, "shutting_down", ErrManagerClosed.Error())
	default:
		// The cause stays in the agent's log: it may name internal hosts.
		h.log.Error("start stream", "err", err)
		writeError(w, http.StatusBadGateway, "control_plane_error", "cannot resolve the stream token")
	}
}

func (h *handler) list(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"items": h.m.List()})
}

func (h *handler) stop(w http.ResponseWriter, r *http.Request) {
	err := h.m.Stop(r.Context(), r.PathValue("session"))
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The stream is cancelled and forgotten even if the client did not
		// wait for its connections to close.
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrStreamNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such stream session")
	default:
		h.log.Error("stop stream", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "cannot stop the stream")
	}
}

func methodNotAllowed(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
}

// jsonProblem describes a decode error without echoing the body.
func jsonProblem(err error) string {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return fmt.Sprintf("body exceeds %d bytes", mbe.Limit)
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a %s", te.Field, te.Type)
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	// Unknown fields and the like: encoding/json names the field only.
	return err.Error()
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]apiError{"error": {Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
