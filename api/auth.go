package api

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/opennvr/vms/store"
)

const accountKey = "account"

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(c *gin.Context) string {
	h := c.GetHeader("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authenticate resolves the API key to its account; every /v1 handler reads
// the account from the context and scopes its queries to it.
func (s *Server) authenticate(c *gin.Context) {
	key := bearer(c)
	if key == "" {
		fail(c, http.StatusUnauthorized, "unauthorized", "missing Authorization: Bearer <api key>")
		return
	}
	acct, err := s.opts.Store.AccountByAPIKey(c.Request.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusUnauthorized, "unauthorized", "invalid API key")
		return
	}
	if err != nil {
		failErr(c, "account", err)
		return
	}
	c.Set(accountKey, acct)
	c.Next()
}

// requireAdmin lets only admin accounts manage NVR instances.
func (s *Server) requireAdmin(c *gin.Context) {
	if !account(c).Admin {
		fail(c, http.StatusForbidden, "forbidden", "admin only")
		return
	}
	c.Next()
}

func account(c *gin.Context) *store.Account {
	return c.MustGet(accountKey).(*store.Account)
}

const agentKey = "agent"

// authWorker admits media workers by their shared key.
func (s *Server) authWorker(c *gin.Context) {
	key := bearer(c)
	if s.opts.WorkerKey == "" || subtle.ConstantTimeCompare([]byte(key), []byte(s.opts.WorkerKey)) != 1 {
		fail(c, http.StatusUnauthorized, "unauthorized", "media worker key required")
		return
	}
	c.Next()
}

// authAgent admits local agents by their own key.
func (s *Server) authAgent(c *gin.Context) {
	key := bearer(c)
	if key == "" {
		fail(c, http.StatusUnauthorized, "unauthorized", "agent key required")
		return
	}
	a, err := s.opts.Store.AgentByKey(c.Request.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusUnauthorized, "unauthorized", "invalid agent key")
		return
	}
	if err != nil {
		failErr(c, "agent", err)
		return
	}
	c.Set(agentKey, a)
	c.Next()
}
