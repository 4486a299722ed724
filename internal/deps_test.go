// Package internal_test keeps the direction of the house (STYLE.md): the
// numeric packages use only the standard library and gonum, and do no I/O;
// the gateway never imports the report; parsers and decoders import no
// analysis.
package internal_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// imports returns the imports of a package's non-test files.
func imports(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			out[p] = true
		}
	}
	return out
}

const module = "github.com/iomtguard/iomtguard/"

func TestDependencyDirection(t *testing.T) {
	std := func(p string) bool { return !strings.Contains(strings.Split(p, "/")[0], ".") }
	for _, c := range []struct {
		pkg   string
		allow func(string) bool
		why   string
	}{
		{"stats", std, "numbers in, numbers out: the standard library only"},
		{"cluster", func(p string) bool { return std(p) || strings.HasPrefix(p, "gonum.org/") }, "the standard library and gonum only"},
		{"forecast", func(p string) bool { return std(p) || strings.HasPrefix(p, "gonum.org/") }, "the standard library and gonum only"},
		{"mqtt", std, "the codec is shared by capture and gateway: the standard library only"},
		{"packet", func(p string) bool { return std(p) || p == module+"internal/capture" }, "decoding knows nothing of analysis"},
		{"capture", std, "sources know nothing of analysis"},
		{"../seal", std, "a public library device makers import: the standard library only"},
		{"gateway", func(p string) bool { return !strings.HasPrefix(p, module+"internal/report") }, "the gateway never imports the report"},
		{"detect", func(p string) bool { return !strings.HasPrefix(p, module+"internal/report") }, "detection does not render"},
	} {
		for p := range imports(t, c.pkg) {
			if !c.allow(p) {
				t.Errorf("internal/%s imports %s: %s", c.pkg, p, c.why)
			}
		}
	}
	// The numeric packages do no I/O.
	for _, pkg := range []string{"stats", "cluster", "forecast"} {
		for p := range imports(t, pkg) {
			if p == "os" || p == "net" || p == "io/ioutil" || p == "log" || p == "log/slog" {
				t.Errorf("internal/%s imports %s: numeric packages do no I/O", pkg, p)
			}
		}
	}
	if _, err := os.Stat("report"); err != nil {
		t.Fatal(err)
	}
}
