package analysis

import (
	"reflect"
	"testing"
)

// TestWorkerFieldsOnOwnLines: the fields the columns worker writes for
// every frame (apply) are at least 128 bytes from every field the engine's
// goroutine uses, so that neither takes cache lines from the other (false
// sharing cost the engine 27 ns a frame on one read).
func TestWorkerFieldsOnOwnLines(t *testing.T) {
	worker := map[string]bool{"all": true, "mq": true, "kpts": true, "kcache": true, "kFrames": true}
	typ := reflect.TypeFor[Analyzer]()
	lo, hi := ^uintptr(0), uintptr(0)
	for i := range typ.NumField() {
		if f := typ.Field(i); worker[f.Name] {
			lo, hi = min(lo, f.Offset), max(hi, f.Offset+f.Type.Size())
		}
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if worker[f.Name] || f.Name == "_" {
			continue
		}
		if end := f.Offset + f.Type.Size(); end+128 > lo && f.Offset < hi+128 {
			t.Errorf("%s (bytes %d to %d) is within 128 bytes of the worker's fields (%d to %d)", f.Name, f.Offset, end, lo, hi)
		}
	}
	// The worker's fields are one block: nothing of the engine's between them.
	for i := range typ.NumField() {
		if f := typ.Field(i); !worker[f.Name] && f.Offset >= lo && f.Offset < hi {
			t.Errorf("%s lies among the worker's fields", f.Name)
		}
	}
}
