package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
)

// smartConfiguration serves /.well-known/smart-configuration (SMART App
// Launch v2): where tokens come from and what the server understands.
func (s *Server) smartConfiguration(c *gin.Context) {
	base := strings.TrimSuffix(s.base(c), "/fhir")
	c.JSON(http.StatusOK, gin.H{
		"issuer":                                s.auth.Issuer,
		"jwks_uri":                              base + "/auth/jwks",
		"token_endpoint":                        base + "/auth/token",
		"grant_types_supported":                 []string{"client_credentials", "password"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"scopes_supported":                      []string{"system/*.cruds", "user/*.cruds", "patient/*.rs", "user/*.rs", "system/*.cu"},
		"response_types_supported":              []string{"token"},
		"capabilities": []string{
			"client-confidential-symmetric", "permission-v1", "permission-v2",
			"context-standalone-patient",
		},
		"code_challenge_methods_supported": []string{},
	})
}

// jwks serves the public keys of the tokens the server issues.
func (s *Server) jwks(c *gin.Context) {
	if s.auth.Key == nil {
		c.JSON(http.StatusOK, gin.H{"keys": []any{}})
		return
	}
	c.Data(http.StatusOK, "application/jwk-set+json", s.auth.Key.PublicJWKS())
}

// token is the OAuth2 token endpoint: the client_credentials grant of
// registered system clients (RFC 6749 §4.4). Errors follow RFC 6749 §5.2.
func (s *Server) token(c *gin.Context) {
	oauthError := func(status int, code, desc string) {
		c.Header("Cache-Control", "no-store")
		c.JSON(status, gin.H{"error": code, "error_description": desc})
	}
	if err := c.Request.ParseForm(); err != nil {
		oauthError(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	switch c.Request.PostForm.Get("grant_type") {
	case "client_credentials":
	case "password":
		s.passwordGrant(c, oauthError)
		return
	default:
		oauthError(http.StatusBadRequest, "unsupported_grant_type", "the grants are client_credentials (system clients) and password (patients)")
		return
	}
	id, secret, ok := c.Request.BasicAuth()
	if !ok {
		id, secret = c.Request.PostForm.Get("client_id"), c.Request.PostForm.Get("client_secret")
	}
	if s.auth.Clients == nil || s.auth.Key == nil || id == "" || secret == "" {
		oauthError(http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	caller, err := s.auth.Clients.Authenticate(id, secret)
	if errors.Is(err, auth.ErrUnauthenticated) {
		oauthError(http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	if err != nil {
		s.log.Error("client registry", "err", err)
		oauthError(http.StatusInternalServerError, "server_error", "the client registry could not be read")
		return
	}
	if want := c.Request.PostForm.Get("scope"); want != "" {
		granted := auth.ParseScopes(want)
		for _, sc := range strings.Fields(want) {
			if !caller.Scopes.Has(sc) {
				oauthError(http.StatusBadRequest, "invalid_scope", "scope "+sc+" is not granted to this client")
				return
			}
		}
		caller.Scopes = granted
	}
	ttl := s.auth.TokenTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	claims := caller.Claims()
	claims.Issuer, claims.Audience = s.auth.Issuer, s.auth.Audience
	tok, err := s.auth.Key.Issue(claims, ttl)
	if err != nil {
		s.log.Error("issuing a token", "err", err)
		oauthError(http.StatusInternalServerError, "server_error", "the token could not be issued")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds()), "scope": caller.Scopes.String()})
}

// passwordScopes are what a patient's session may do: read their record,
// add their own documents, manage their consent (the rules of package auth
// and mayWrite narrow it to their own record).
const passwordScopes = "patient/*.cruds"

// passwordGrant signs a patient in with their DMP identifier and password
// (RFC 6749 §4.3): a patient token, or invalid_grant. Five failures in a
// row lock the account for 15 minutes.
func (s *Server) passwordGrant(c *gin.Context, oauthError func(status int, code, desc string)) {
	login, password := c.Request.PostForm.Get("username"), c.Request.PostForm.Get("password")
	if login == "" || password == "" {
		oauthError(http.StatusBadRequest, "invalid_request", "username (the DMP identifier) and password are required")
		return
	}
	if s.auth.Key == nil {
		oauthError(http.StatusBadRequest, "unsupported_grant_type", "this server issues no tokens")
		return
	}
	patient, err := s.signIn(c, login, password)
	var locked lockedError
	switch {
	case errors.As(err, &locked):
		oauthError(http.StatusBadRequest, "invalid_grant", locked.Error())
		return
	case errors.Is(err, auth.ErrNoAccount):
		oauthError(http.StatusBadRequest, "invalid_grant", "unknown DMP identifier or wrong password")
		return
	case err != nil:
		s.log.Error("patient sign-in", "err", err)
		oauthError(http.StatusInternalServerError, "server_error", "the sign-in could not be checked")
		return
	}
	scopes := passwordScopes
	if want := c.Request.PostForm.Get("scope"); want != "" {
		granted := auth.ParseScopes(passwordScopes)
		for _, sc := range strings.Fields(want) {
			if !granted.Has(sc) {
				oauthError(http.StatusBadRequest, "invalid_scope", "scope "+sc+" is not granted to a patient")
				return
			}
		}
		scopes = want
	}
	ttl := s.auth.TokenTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	claims := auth.Claims{Kind: auth.KindPatient, Patient: patient, Scope: scopes}
	claims.Issuer, claims.Audience = s.auth.Issuer, s.auth.Audience
	tok, err := s.auth.Key.Issue(claims, ttl)
	if err != nil {
		s.log.Error("issuing a token", "err", err)
		oauthError(http.StatusInternalServerError, "server_error", "the token could not be issued")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds()), "scope": scopes, "patient": patient})
}
