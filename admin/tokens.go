package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/model"
)

// Role is what a token may do. Each role may do what the roles below it may.
type Role int

// Roles, least to most.
const (
	RoleNone Role = iota
	// RoleViewer reads (when reads need a token at all).
	RoleViewer
	// RoleOperator pauses, resumes, aborts, approves and reports checks.
	RoleOperator
	// RoleAdmin starts, promotes, finishes, freezes: everything.
	RoleAdmin
)

var roleNames = map[Role]string{RoleViewer: "viewer", RoleOperator: "operator", RoleAdmin: "admin"}

func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return "none"
}

// ParseRole reads viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if n == s {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("%q: want viewer, operator or admin", s)
}

// Identity is who presented a token.
type Identity struct {
	Name string
	Role Role
}

// SingleTokenName is the identity of the single token of --admin-token.
const SingleTokenName = "admin"

// MinTokenLength is the shortest token a tokens file may hold.
const MinTokenLength = 16

// tokenNameRE is the rule of token names, which are recorded as actors.
var tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]*$`)

type tokenEntry struct {
	name string
	role Role
	hash [sha256.Size]byte
}

// tokenSet is one loaded set of tokens.
type tokenSet []tokenEntry

// lookup returns the identity of tok. It compares tok's hash with every entry in
// constant time and without stopping at a match.
func (ts tokenSet) lookup(tok string) (Identity, bool) {
	h := sha256.Sum256([]byte(tok))
	found := -1
	for i := range ts {
		if subtle.ConstantTimeCompare(h[:], ts[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Identity{}, false
	}
	return Identity{Name: ts[found].name, Role: ts[found].role}, true
}

// tokensFile is the tokens file: YAML or JSON.
type tokensFile struct {
	Tokens []struct {
		Name      string `yaml:"name"`
		Role      string `yaml:"role"`
		Token     string `yaml:"token"`
		TokenHash string `yaml:"tokenHash"`
	} `yaml:"tokens"`
}

// lineRE finds the line of a YAML error, so that the error can be reported without the
// text around it (which may be a token).
var lineRE = regexp.MustCompile(`line \d+`)

// ParseTokens reads a tokens file (YAML or JSON):
//
//	tokens:
//	  - {name: alice, role: admin, tokenHash: "sha256:<64 hex digits>"}
//	  - {name: deploy-bot, role: operator, token: "<at least 16 characters>"}
//
// Errors name the entry and field, never a token.
func ParseTokens(data []byte) (tokenSet, error) {
	var f tokensFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		where := lineRE.FindString(err.Error())
		if where == "" {
			where = "document"
		}
		if strings.Contains(err.Error(), "not found in type") {
			return nil, fmt.Errorf("%s: unknown field (want tokens[].name, role, token or tokenHash)", where)
		}
		return nil, fmt.Errorf("%s: not a tokens document (YAML or JSON with a tokens list)", where)
	}
	if len(f.Tokens) == 0 {
		return nil, errors.New("tokens: at least one token is required")
	}
	var errs []error
	out := make(tokenSet, 0, len(f.Tokens))
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]string{}
	for i, t := range f.Tokens {
		p := fmt.Sprintf("tokens[%d]", i)
		e := tokenEntry{name: t.Name}
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: required", p))
		case model.CheckLength(p+".name", t.Name, model.MaxActorLen) != nil:
			errs = append(errs, model.CheckLength(p+".name", t.Name, model.MaxActorLen))
		case !tokenNameRE.MatchString(t.Name):
			errs = append(errs, fmt.Errorf("%s.name: %q: letters, digits and . _ @ + - only", p, t.Name))
		case names[t.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q given twice", p, t.Name))
		}
		names[t.Name] = true
		r, err := ParseRole(t.Role)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.role: %w", p, err))
		}
		e.role = r
		switch {
		case (t.Token == "") == (t.TokenHash == ""):
			errs = append(errs, fmt.Errorf("%s: give exactly one of token and tokenHash", p))
		case t.Token != "":
			if len(t.Token) < MinTokenLength {
				errs = append(errs, fmt.Errorf("%s.token: shorter than %d characters", p, MinTokenLength))
			}
			e.hash = sha256.Sum256([]byte(t.Token))
		default:
			hx, ok := strings.CutPrefix(t.TokenHash, "sha256:")
			b, err := hex.DecodeString(hx)
			if !ok || err != nil || len(b) != sha256.Size {
				errs = append(errs, fmt.Errorf(`%s.tokenHash: want "sha256:" and 64 hex digits`, p))
			}
			copy(e.hash[:], b)
		}
		if other, dup := hashes[e.hash]; dup {
			errs = append(errs, fmt.Errorf("%s: the same token as %s", p, other))
		}
		hashes[e.hash] = t.Name
		out = append(out, e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// TokenSource says where the tokens come from: a tokens file, a single token (from
// OCTOROLL_ADMIN_TOKEN or a file holding it), or both.
type TokenSource struct {
	// File is the tokens file (--admin-tokens-file).
	File string
	// Single is the single admin token; SingleFile a file holding it (trimmed).
	Single, SingleFile string
}

// Tokens holds the current tokens and reloads their files when they change; a bad
// file keeps the last good tokens and says so (log, Status). Safe for concurrent use.
type Tokens struct {
	src  TokenSource
	log  *zap.Logger
	set  atomic.Pointer[tokenSet]
	mu   sync.Mutex
	last []byte // contents of the files last read, good or bad
	st   api.AuthStatus
}

// NewTokens loads the tokens of src; an error names the file and the problem. With an
// empty src it returns nil: no tokens are configured.
func NewTokens(src TokenSource, log *zap.Logger) (*Tokens, error) {
	if src == (TokenSource{}) {
		return nil, nil
	}
	if log == nil {
		log = zap.NewNop()
	}
	t := &Tokens{src: src, log: log.Named("tokens")}
	data, set, err := t.read()
	if err != nil {
		return nil, err
	}
	t.last = data
	t.set.Store(&set)
	t.st = api.AuthStatus{File: src.File, Tokens: len(set), LoadedAt: time.Now()}
	return t, nil
}

// read reads and parses every configured file.
func (t *Tokens) read() ([]byte, tokenSet, error) {
	var all []byte
	var set tokenSet
	single := t.src.Single
	if t.src.SingleFile != "" {
		b, err := os.ReadFile(t.src.SingleFile)
		if err != nil {
			return nil, nil, fmt.Errorf("admin token file: %w", err)
		}
		all = append(all, b...)
		single = strings.TrimSpace(string(b))
		if single == "" {
			return all, nil, fmt.Errorf("admin token file %s: empty", t.src.SingleFile)
		}
	}
	if single != "" {
		set = append(set, tokenEntry{name: SingleTokenName, role: RoleAdmin, hash: sha256.Sum256([]byte(single))})
	}
	if t.src.File != "" {
		b, err := os.ReadFile(t.src.File)
		if err != nil {
			return nil, nil, fmt.Errorf("admin tokens file: %w", err)
		}
		all = append(all, 0)
		all = append(all, b...)
		fs, err := ParseTokens(b)
		if err != nil {
			return all, nil, fmt.Errorf("admin tokens file %s: %w", t.src.File, err)
		}
		for _, e := range fs {
			if len(set) > 0 && set[0].hash == e.hash {
				return all, nil, fmt.Errorf("admin tokens file %s: %s has the single admin token", t.src.File, e.name)
			}
		}
		set = append(set, fs...)
	}
	return all, set, nil
}

// Reload re-reads the files; unchanged contents do nothing. A bad file keeps the
// current tokens and is logged once per content.
func (t *Tokens) Reload() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	data, set, err := t.read()
	if data != nil && bytes.Equal(data, t.last) {
		return nil
	}
	if err != nil && data == nil && t.st.Failing && t.st.LastError == err.Error() {
		return err // still unreadable: said already
	}
	now := time.Now()
	if err != nil {
		if data != nil {
			t.last = data
		}
		t.st.Failing, t.st.LastError, t.st.LastErrorAt = true, err.Error(), now
		t.log.Error("admin tokens not reloaded; the previous tokens stay in force", zap.Error(err))
		return err
	}
	t.last = data
	t.set.Store(&set)
	t.st.Failing, t.st.Tokens, t.st.LoadedAt = false, len(set), now
	t.log.Info("admin tokens reloaded", zap.Int("tokens", len(set)))
	return nil
}

// Run reloads the files every interval until ctx ends.
func (t *Tokens) Run(ctx context.Context, interval time.Duration) error {
	if t == nil {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			_ = t.Reload()
		}
	}
}

// Lookup returns the identity of a presented token.
func (t *Tokens) Lookup(tok string) (Identity, bool) {
	if t == nil || tok == "" {
		return Identity{}, false
	}
	return (*t.set.Load()).lookup(tok)
}

// Status is what /api/v1/status shows of the tokens: how many, whether the last reload
// failed and why. It names no token.
func (t *Tokens) Status() *api.AuthStatus {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.st
	return &st
}
