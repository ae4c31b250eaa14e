package cli

import (
	"io"
	"net/url"
	"strconv"
)

// post POSTs body as JSON to path, decodes the answer into a T and prints it: the
// API's own data with -o json or yaml, otherwise the text write renders.
func post[T any](a *App, path string, body any, write func(io.Writer, T)) error {
	return render(a, func(c *client, v any) ([]byte, error) { return c.postJSON(a.ctx, path, body, v) }, write)
}

// render makes one API call (call decodes the answer into v and returns its bytes) and
// prints the answer: the API's own data with -o json or yaml, otherwise the text write
// renders of it as a T.
func render[T any](a *App, call func(c *client, v any) ([]byte, error), write func(io.Writer, T)) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	var v T
	b, err := call(c, &v)
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
