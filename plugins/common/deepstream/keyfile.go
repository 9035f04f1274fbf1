package deepstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Limits bounds the work Parse does on untrusted input.
type Limits struct {
	// MaxBytes is the largest accepted file, in bytes.
	MaxBytes int64
	// MaxLineBytes is the longest accepted line, in bytes.
	MaxLineBytes int
	// MaxGroups is the largest accepted number of groups.
	MaxGroups int
	// MaxKeys is the largest accepted number of keys over all groups.
	MaxKeys int
}

// DefaultLimits are generous for DeepStream configs, whose samples are a few
// kilobytes, and small enough that a hostile file costs little to reject.
var DefaultLimits = Limits{
	MaxBytes:     256 << 10,
	MaxLineBytes: 16 << 10,
	MaxGroups:    1024,
	MaxKeys:      16384,
}

// ErrTooLarge is returned (wrapped) when a file or a line exceeds its limit.
var ErrTooLarge = errors.New("deepstream: config exceeds size limit")

// ParseError describes why a config was rejected, with its 1-based line.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return "deepstream: " + e.Msg
	}
	return fmt.Sprintf("deepstream: line %d: %s", e.Line, e.Msg)
}

// Entry is one key=value line. Value is the raw text after `=`, with
// surrounding whitespace removed and escapes still in place.
type Entry struct {
	Key   string
	Value string
	Line  int
}

// Group is one `[name]` section, its entries in file order.
type Group struct {
	Name    string
	Line    int
	Entries []Entry
	index   map[string]int
}

// KeyFile is a parsed GKeyFile, its groups in file order.
type KeyFile struct {
	Groups []*Group
	index  map[string]int
}

// Group returns the group called name, or nil.
func (k *KeyFile) Group(name string) *Group {
	if k == nil {
		return nil
	}
	i, ok := k.index[name]
	if !ok {
		return nil
	}
	return k.Groups[i]
}

// String formats the file back into GKeyFile text that Parse reads to the
// same KeyFile.
func (k *KeyFile) String() string {
	var b strings.Builder
	for _, g := range k.Groups {
		b.WriteString("[" + g.Name + "]\n")
		for _, e := range g.Entries {
			b.WriteString(e.Key + "=" + e.Value + "\n")
		}
	}
	return b.String()
}

// Raw returns the unprocessed value of key.
func (g *Group) Raw(key string) (string, bool) {
	if g == nil {
		return "", false
	}
	i, ok := g.index[key]
	if !ok {
		return "", false
	}
	return g.Entries[i].Value, true
}

// String returns the value of key with GKeyFile escapes decoded.
func (g *Group) String(key string) (string, bool, error) {
	raw, ok := g.Raw(key)
	if !ok {
		return "", false, nil
	}
	s, err := unescape(raw, false)
	if err != nil {
		return "", true, g.keyErr(key, err)
	}
	return s, true, nil
}

// StringList returns the `;`-separated values of key, escapes decoded, with
// empty items dropped.
func (g *Group) StringList(key string) ([]string, bool, error) {
	raw, ok := g.Raw(key)
	if !ok {
		return nil, false, nil
	}
	var out []string
	var cur strings.Builder
	flush := func() error {
		s, err := unescape(cur.String(), true)
		if err != nil {
			return err
		}
		cur.Reset()
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
		return nil
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\\' && i+1 < len(raw):
			cur.WriteByte(c)
			cur.WriteByte(raw[i+1])
			i++
		case c == ';':
			if err := flush(); err != nil {
				return nil, true, g.keyErr(key, err)
			}
		default:
			cur.WriteByte(c)
		}
	}
	if err := flush(); err != nil {
		return nil, true, g.keyErr(key, err)
	}
	return out, true, nil
}

// Int returns the value of key as an integer.
func (g *Group) Int(key string) (int64, bool, error) {
	raw, ok := g.Raw(key)
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, true, g.keyErr(key, fmt.Errorf("value %q is not an integer", raw))
	}
	return n, true, nil
}

// Bool returns the value of key as a boolean. Like GLib it accepts true,
// false, 1 and 0.
func (g *Group) Bool(key string) (bool, bool, error) {
	raw, ok := g.Raw(key)
	if !ok {
		return false, false, nil
	}
	switch raw {
	case "true", "1":
		return true, true, nil
	case "false", "0":
		return false, true, nil
	}
	return false, true, g.keyErr(key, fmt.Errorf("value %q is not a boolean", raw))
}

func (g *Group) keyErr(key string, err error) error {
	return &ParseError{Line: g.Entries[g.index[key]].Line, Msg: fmt.Sprintf("[%s] %s: %v", g.Name, key, err)}
}

// unescape decodes GKeyFile string escapes. In a list item `\;` is a literal
// semicolon.
func unescape(s string, inList bool) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("escape character at end of value")
		}
		i++
		switch s[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		case ';':
			if !inList {
				return "", errors.New(`invalid escape sequence "\;" outside a list`)
			}
			b.WriteByte(';')
		default:
			return "", fmt.Errorf("invalid escape sequence \"\\%c\"", s[i])
		}
	}
	return b.String(), nil
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Parse reads GKeyFile text within lim. See the package documentation for
// what it rejects.
func Parse(data []byte, lim Limits) (*KeyFile, error) {
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	if !utf8.Valid(data) {
		return nil, &ParseError{Line: firstInvalidUTF8Line(data), Msg: "text is not valid UTF-8"}
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	kf := &KeyFile{index: make(map[string]int)}
	var cur *Group
	keys := 0
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if len(line) > lim.MaxLineBytes {
			return nil, fmt.Errorf("%w: line %d is %d bytes, limit %d", ErrTooLarge, lineNo, len(line), lim.MaxLineBytes)
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		for _, c := range line {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return nil, &ParseError{Line: lineNo, Msg: fmt.Sprintf("control character 0x%02x", c)}
			}
		}
		text := strings.TrimLeft(string(line), " \t")
		switch {
		case text == "" || text[0] == '#':
			continue
		case text[0] == '[':
			name, err := groupName(text)
			if err != nil {
				return nil, &ParseError{Line: lineNo, Msg: err.Error()}
			}
			if prev, dup := kf.index[name]; dup {
				return nil, &ParseError{Line: lineNo, Msg: fmt.Sprintf("duplicate group [%s] (first on line %d)", name, kf.Groups[prev].Line)}
			}
			if len(kf.Groups) >= lim.MaxGroups {
				return nil, fmt.Errorf("%w: more than %d groups", ErrTooLarge, lim.MaxGroups)
			}
			cur = &Group{Name: name, Line: lineNo, index: make(map[string]int)}
			kf.index[name] = len(kf.Groups)
			kf.Groups = append(kf.Groups, cur)
		default:
			eq := strings.IndexByte(text, '=')
			if eq < 0 {
				return nil, &ParseError{Line: lineNo, Msg: "line is not a group, a key=value pair or a comment"}
			}
			if cur == nil {
				return nil, &ParseError{Line: lineNo, Msg: "key=value pair before the first group"}
			}
			key := strings.TrimRight(text[:eq], " \t")
			if err := checkKey(key); err != nil {
				return nil, &ParseError{Line: lineNo, Msg: err.Error()}
			}
			if prev, dup := cur.index[key]; dup {
				return nil, &ParseError{Line: lineNo, Msg: fmt.Sprintf("duplicate key %q in [%s] (first on line %d)", key, cur.Name, cur.Entries[prev].Line)}
			}
			keys++
			if keys > lim.MaxKeys {
				return nil, fmt.Errorf("%w: more than %d keys", ErrTooLarge, lim.MaxKeys)
			}
			value := strings.Trim(text[eq+1:], " \t")
			cur.index[key] = len(cur.Entries)
			cur.Entries = append(cur.Entries, Entry{Key: key, Value: value, Line: lineNo})
		}
	}
	return kf, nil
}

func firstInvalidUTF8Line(data []byte) int {
	line := 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return line
		}
		if r == '\n' {
			line++
		}
		data = data[size:]
	}
	return line
}

func groupName(text string) (string, error) {
	text = strings.TrimRight(text, " \t")
	if !strings.HasSuffix(text, "]") || len(text) < 2 {
		return "", errors.New("group header does not end with ']'")
	}
	name := text[1 : len(text)-1]
	if name == "" {
		return "", errors.New("empty group name")
	}
	if strings.ContainsAny(name, "[]") {
		return "", fmt.Errorf("group name %q contains '[' or ']'", name)
	}
	return name, nil
}

// checkKey accepts keys made of ASCII letters, digits, '-', '_' and '.',
// optionally followed by a GKeyFile locale suffix such as `[de_DE]`.
func checkKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	base, locale := key, ""
	if i := strings.IndexByte(key, '['); i >= 0 {
		if !strings.HasSuffix(key, "]") || i == 0 {
			return fmt.Errorf("malformed key %q", key)
		}
		base, locale = key[:i], key[i+1:len(key)-1]
		if locale == "" {
			return fmt.Errorf("malformed locale in key %q", key)
		}
	}
	for _, s := range []string{base, locale} {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || (s == locale && c == '@')) {
				return fmt.Errorf("key %q contains invalid character %q", key, c)
			}
		}
	}
	return nil
}

// ReadLimited reads at most limit bytes from r and fails with ErrTooLarge
// when there is more.
func ReadLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("deepstream: read: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return data, nil
}

// ParseFile opens path (which must be a regular file, not a FIFO or a device)
// and parses it within lim. It is meant for callers that trust the path, like
// the stand-in app and the orchestrator; the attestor resolves paths inside a
// process's root itself and calls Parse.
func ParseFile(path string, lim Limits) (*KeyFile, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("deepstream: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("deepstream: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("deepstream: %s is not a regular file", path)
	}
	if fi.Size() > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, path, fi.Size(), lim.MaxBytes)
	}
	data, err := ReadLimited(f, lim.MaxBytes)
	if err != nil {
		return nil, err
	}
	kf, err := Parse(data, lim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kf, nil
}
