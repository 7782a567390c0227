package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// The web page of SPEC §11: one HTML page, its style sheet and one script,
// built into the binary. It needs no token to load; everything it shows
// comes from the public API, called with the token the user enters.
const (
	// PagePath serves the page.
	PagePath = "/"
	// UIPath prefixes the page's assets.
	UIPath = "/ui"
	// UIConfigPath tells the page how it is served; see handleUIConfig.
	UIConfigPath = UIPath + "/config.json"
)

// ContentSecurityPolicy is sent with the page and its assets: scripts,
// styles, images and fetches from this origin only, no inline script or
// style, no plugins, no forms posted anywhere, no framing. A page that
// shows API data must not run anything that data could smuggle in.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed web
var webFiles embed.FS

// asset is one embedded file, with its ETag computed once.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// webAssets are the embedded files by name (app.js …), read at start.
var webAssets = func() map[string]asset {
	out := map[string]asset{}
	entries, err := fs.ReadDir(webFiles, "web")
	if err != nil {
		panic("embedded web assets: " + err.Error())
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := webFiles.ReadFile("web/" + e.Name())
		if err != nil {
			panic("embedded web assets: " + err.Error())
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(e.Name()))
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[e.Name()] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return out
}()

// pageFile is the page itself among the assets.
const pageFile = "index.html"

// registerWeb adds the page and its assets; none needs a token.
func (s *Server) registerWeb(e *echo.Echo) {
	e.GET(PagePath, func(c echo.Context) error { return serveAsset(c, pageFile) })
	e.GET(UIConfigPath, s.handleUIConfig)
	e.GET(UIPath+"/:file", func(c echo.Context) error { return serveAsset(c, c.Param("file")) })
}

// serveAsset answers one embedded file with the page's security headers.
// Revalidation is by ETag: a new binary serves new assets at once.
func serveAsset(c echo.Context, name string) error {
	a, ok := webAssets[name]
	if !ok || strings.HasPrefix(name, ".") {
		return newAPIError(http.StatusNotFound, "not_found", "no such page asset")
	}
	h := c.Response().Header()
	setPageHeaders(h)
	h.Set(echo.HeaderContentType, a.contentType)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(c.Response(), c.Request(), "", time.Time{}, bytes.NewReader(a.body))
	return nil
}

// setPageHeaders sets the headers every page response carries.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// UIConfig is the JSON of UIConfigPath.
type UIConfig struct {
	// DemoToken is a token for 'serve --demo' on a loopback address, which
	// the page fills in; absent everywhere else.
	DemoToken string `json:"demoToken,omitempty"`
}

// handleUIConfig tells the page the demo token when there is one. It is
// only answered to a loopback client that addressed the server by a
// loopback name: a page on another site that rebinds its own host name to
// 127.0.0.1 would reach this route as same-origin, but with its own name
// in Host, and gets nothing.
func (s *Server) handleUIConfig(c echo.Context) error {
	h := c.Response().Header()
	setPageHeaders(h)
	h.Set("Cache-Control", "no-store")
	cfg := UIConfig{}
	if s.cfg.DemoToken != "" && isLoopbackHost(c.Request().Host) && isLoopbackHost(c.Request().RemoteAddr) {
		cfg.DemoToken = s.cfg.DemoToken
	}
	return c.JSON(http.StatusOK, cfg)
}

// isLoopbackHost reports whether a host or host:port names this machine's
// loopback interface: localhost or a loopback IP.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
