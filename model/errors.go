package model

// Unjoin lists the errors joined in err (errors.Join, nested joins flattened), in order:
// a file's or a request's problems one by one. nil has none.
func Unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Unjoin(e)...)
		}
		return out
	}
	return []error{err}
}
