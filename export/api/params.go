package api

import (
	"slices"
	"sort"

	"worklog/query"

	"github.com/labstack/echo/v4"
)

// Query parameters are strict on every route (SPEC §4): a parameter that a
// route does not know is refused with 400 naming it, because a misspelt
// parameter that is silently ignored gives a user an answer to a question
// they did not ask. access_token is refused everywhere with its own message:
// tokens go in the Authorization header, never in a URL that logs and
// browser histories keep.
//
// Every route declares its parameters with takesParams when it is
// registered; a route that declares none takes none.

// paramOnError is the ingest route's only parameter.
const paramOnError = "onError"

// parsedByHandler marks a route whose handler parses its whole query string
// strictly itself (the export: query.Parse knows filters[i][...]).
var parsedByHandler = []string{"\x00parsed by handler"}

// takesParams declares the query parameters of the route template path.
func (s *Server) takesParams(path string, names ...string) {
	if s.routeParams == nil {
		s.routeParams = map[string][]string{}
	}
	s.routeParams[path] = names
}

// strictQuery refuses access_token on every route, and on routes whose
// handler does not parse its own parameters, every parameter the route did
// not declare.
func (s *Server) strictQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		params := c.QueryParams()
		if len(params) == 0 {
			return next(c)
		}
		if params.Has(query.ParamAccessToken) {
			return query.UnknownParam(query.ParamAccessToken, nil)
		}
		known := s.routeParams[c.Path()]
		if slices.Equal(known, parsedByHandler) || !s.routes[c.Path()] {
			// The handler checks; or no route matched, and the 404 says more
			// than a complaint about the query string would.
			return next(c)
		}
		names := make([]string, 0, len(params))
		for k := range params {
			names = append(names, k)
		}
		sort.Strings(names) // the same parameter is reported every time
		for _, k := range names {
			if !slices.Contains(known, k) {
				return query.UnknownParam(k, known)
			}
		}
		return next(c)
	}
}
