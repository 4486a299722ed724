package seal_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// deviceMaker is the package of a module outside this repository: a device
// maker's firmware helper that seals readings with the public API.
const deviceMaker = `// Package devicemaker is how a device maker's code uses the envelope:
// it imports github.com/iomtguard/iomtguard/seal from outside its module.
package devicemaker

import "github.com/iomtguard/iomtguard/seal"

// Sealer seals readings for the nurse station's public key (a PEM file
// made by 'iomtguard keygen').
func Sealer(publicKeyPEM []byte) (*seal.Sealer, error) {
	k, err := seal.ParsePEM(publicKeyPEM)
	if err != nil {
		return nil, err
	}
	return seal.NewSealer(k, seal.Options{Session: true})
}
`

const deviceMakerTest = `package devicemaker_test

import (
	"testing"

	"github.com/iomtguard/iomtguard/seal"

	"example.com/devicemaker"
)

func TestSealForNurseStation(t *testing.T) {
	k, err := seal.GenerateKey(seal.MLKEM768X25519)
	if err != nil {
		t.Fatal(err)
	}
	s, err := devicemaker.Sealer(k.Public().MarshalPEM())
	if err != nil {
		t.Fatal(err)
	}
	op := seal.NewOpener(k, seal.OpenOptions{})
	for _, r := range []string{"97", "96", "98"} {
		env, err := s.Seal("ward3/bed1/spo2", []byte(r))
		if err != nil {
			t.Fatal(err)
		}
		if pt, _, err := op.Open("ward3/bed1/spo2", env); err != nil || string(pt) != r {
			t.Fatalf("%q: %v", pt, err)
		}
	}
}
`

// TestExternalModule builds a module outside this repository that imports
// the envelope package, and runs there the published-vector test
// (published_test.go, renamed into that module) and a test of its own code.
// Go refuses internal packages across modules: this is the proof that the
// package is importable.
func TestExternalModule(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command in a module of its own")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	write("go.mod", "module example.com/devicemaker\n\ngo 1.26\n\nrequire github.com/iomtguard/iomtguard v0.0.0-00010101000000-000000000000\n\n"+
		"replace github.com/iomtguard/iomtguard => "+root+"\n")
	write("go.sum", read(filepath.Join(root, "go.sum")))
	write("devicemaker.go", deviceMaker)
	write("devicemaker_test.go", deviceMakerTest)
	write("published_test.go", strings.Replace(read("published_test.go"), "package seal_test", "package devicemaker_test", 1))
	write("testdata/vectors.json", read("testdata/vectors.json"))
	cmd := exec.Command("go", "test", "-count=1", "-v", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test in the outside module: %v\n%s", err, out)
	}
	for _, want := range []string{"--- PASS: TestPublishedVectors", "--- PASS: TestSealForNurseStation", "ok  \texample.com/devicemaker"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("the outside module's run lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "cases,") && strings.Contains(line, "steps") {
			t.Log("outside module:", strings.TrimSpace(line))
		}
	}
}
