package hub

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseSubject: any subject a message can carry is parsed without a
// panic, and what is accepted names a valid site and sensor and rebuilds
// the same subject.
func FuzzParseSubject(f *testing.F) {
	f.Add("iomtguard.sensor.icu.s1.minute")
	f.Add("iomtguard.sensor..s1.minute")
	f.Add("iomtguard.sensor.icu.s1.minute.x")
	f.Fuzz(func(t *testing.T, subj string) {
		site, sensor, kind, ok := parseSubject(subj)
		if !ok {
			return
		}
		if CheckName("site", site) != nil || CheckName("sensor", sensor) != nil || Subject(site, sensor, kind) != subj {
			t.Fatalf("%q accepted as %q %q %q", subj, site, sensor, kind)
		}
	})
}

// FuzzSpoolFile: a spool file left by a crash or damaged on disk is read
// without a panic: refused with an error, or a record with a subject.
func FuzzSpoolFile(f *testing.F) {
	f.Add([]byte("{\"subject\":\"iomtguard.sensor.icu.s1.minute\",\"header\":{}}\nbody"))
	f.Add([]byte("{\"subject\":"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "0000000000000000.msg"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		sp, err := openSpool(dir, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		r, err := sp.peek()
		if err == nil && (r == nil || r.Subject == "") {
			t.Fatalf("accepted %q as %+v", b, r)
		}
		sp.pop(r)
		if n, _ := sp.len(); n != 0 {
			t.Fatalf("%d records left", n)
		}
	})
}
