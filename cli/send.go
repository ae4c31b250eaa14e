package cli

import (
	"io"
	"net/url"
	"strconv"
)

// post POSTs body as JSON to path, decodes the answer into a T and prints it: the
// API's own data with -o json or yaml, otherwise the text write renders.
func post[T any](a *App, path string, body any, write func(io.Writer, T)) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	var v T
	b, err := c.postJSON(a.ctx, path, body, &v)
	if err != nil {
		return err
	}
	if a.structured() {
		return a.printData(b)
	}
	write(a.stdout, v)
	return nil
}

// pageQuery checks a --limit flag and is the query that asks for at most limit items
// (the server's default for 0).
func pageQuery(limit int) (url.Values, error) {
	if limit < 0 {
		return nil, usagef("--limit %d: want a positive number", limit)
	}
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q, nil
}
