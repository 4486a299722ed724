package policy

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Identity patterns.
//
// A devices entry is named by an identity, or by a pattern of identities:
// '*' matches any run of characters, '?' one, and a placeholder {name} a
// non-empty run that the entry's filters (and its roles') can use, so that
// one entry states a naming convention's rights:
//
//	"bed{bed}-{sensor}": {publish: ["icu/{bed}/{sensor}"]}
//
// gives bed12-ecg the topic icu/12/ecg and nothing else. A placeholder takes
// the shortest run that lets the rest match. A value holding '/', '+', '#'
// or NUL would change a filter's levels or add a wildcard: the entry then
// does not match (it fails closed). {identity} stands for the whole
// identity, under the same rule.

// namePattern is a compiled devices entry name.
type namePattern struct {
	exact string         // the name, when it has no pattern characters
	re    *regexp.Regexp // otherwise
	vars  []string       // placeholder names, in order
}

var placeholderName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// compileName compiles a devices entry name.
func compileName(name string) (*namePattern, error) {
	if !strings.ContainsAny(name, "*?{}") {
		return &namePattern{exact: name}, nil
	}
	var b strings.Builder
	b.WriteString("(?s)^")
	np := &namePattern{}
	seen := map[string]bool{}
	for i := 0; i < len(name); {
		switch c := name[i]; c {
		case '*':
			b.WriteString("(?:.*)")
			i++
		case '?':
			b.WriteString("(?:.)")
			i++
		case '{':
			end := strings.IndexByte(name[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%q: '{' without '}'", name)
			}
			v := name[i+1 : i+end]
			if !placeholderName.MatchString(v) || v == "identity" {
				return nil, fmt.Errorf("%q: {%s} is not a placeholder name (letters, digits, _; not identity)", name, v)
			}
			if seen[v] {
				return nil, fmt.Errorf("%q: {%s} twice", name, v)
			}
			seen[v] = true
			np.vars = append(np.vars, v)
			b.WriteString("(.+?)")
			i += end + 1
		case '}':
			return nil, fmt.Errorf("%q: '}' without '{'", name)
		default:
			j := i
			for j < len(name) && !strings.ContainsRune("*?{}", rune(name[j])) {
				j++
			}
			b.WriteString(regexp.QuoteMeta(name[i:j]))
			i = j
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("%q: %v", name, err)
	}
	np.re = re
	return np, nil
}

// safeValue reports whether a value may be put into a topic filter level.
func safeValue(v string) bool { return v != "" && !strings.ContainsAny(v, "/+#\x00") }

// match reports whether identity matches, with the placeholders' values.
func (n *namePattern) match(identity string) (map[string]string, bool) {
	if n.re == nil {
		return nil, identity == n.exact
	}
	m := n.re.FindStringSubmatch(identity)
	if m == nil {
		return nil, false
	}
	var vals map[string]string
	for i, v := range n.vars {
		if !safeValue(m[i+1]) {
			return nil, false
		}
		if vals == nil {
			vals = map[string]string{}
		}
		vals[v] = m[i+1]
	}
	return vals, true
}

// names caches compiled entry names (a policy is read once, its names
// matched for every client).
var names sync.Map // string -> *namePattern

func lookupName(name string) *namePattern {
	if v, ok := names.Load(name); ok {
		return v.(*namePattern)
	}
	np, err := compileName(name)
	if err != nil {
		np = &namePattern{re: regexp.MustCompile(`^\z.`)} // a name that does not compile matches nothing
	}
	names.Store(name, np)
	return np
}

var placeholderRef = regexp.MustCompile(`\{([^{}]*)\}`)

// expand substitutes {identity} and the placeholders in filter; ok is false
// when a placeholder has no value (or {identity} is unsafe): the filter then
// grants nothing.
func expand(filter, identity string, vals map[string]string) (string, bool) {
	if !strings.Contains(filter, "{") {
		return filter, true
	}
	ok := true
	out := placeholderRef.ReplaceAllStringFunc(filter, func(ref string) string {
		v := ref[1 : len(ref)-1]
		if v == "identity" {
			if !safeIdentity(identity) {
				ok = false
			}
			return identity
		}
		val, found := vals[v]
		if !found {
			ok = false
		}
		return val
	})
	return out, ok
}

// safeIdentity: an identity put whole into a filter may span levels (a '/'
// in it is its own), but must not add a wildcard.
func safeIdentity(s string) bool { return s != "" && !strings.ContainsAny(s, "+#\x00") }

// checkPlaceholders reports a filter of a devices entry that names a
// placeholder its entry does not define.
func checkPlaceholders(np *namePattern, filter string) error {
	for _, m := range placeholderRef.FindAllStringSubmatch(filter, -1) {
		v := m[1]
		if v == "identity" {
			continue
		}
		defined := false
		for _, x := range np.vars {
			defined = defined || x == v
		}
		if !defined {
			return fmt.Errorf("filter %q uses {%s}, which the entry's name does not define", filter, v)
		}
	}
	return nil
}
