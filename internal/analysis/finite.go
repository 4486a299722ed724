package analysis

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// finite is the last guard of analysis.json: each degenerate case (the
// standard deviation of one value, a silhouette of one cluster, a model of
// a constant series) is given a defined value or null with a reason where
// it arises; any non-finite number left is written as 0 and named in the
// warnings, so that no input can make the JSON invalid or the run fail,
// and a test can tell that no case was missed.
func finite(r *Result) {
	w := &floatWalker{}
	w.walk(reflect.ValueOf(r).Elem())
	for i, p := range w.bad {
		if i == 10 {
			r.Warnings = append(r.Warnings, "analysis.json: more values were not finite numbers")
			break
		}
		r.Warnings = append(r.Warnings, "analysis.json: "+p+" was not a finite number (written as 0)")
	}
}

var marshaler = reflect.TypeFor[json.Marshaler]()

// floatWalker visits every float of a value. The path of the value being
// visited is a stack of names and indexes, made into a string only for a
// value that is not finite (profiling analyze: building a path string for
// each of the hundreds of thousands of series values was a fifth of its
// finish).
type floatWalker struct {
	path []pathPart
	bad  []string
}

type pathPart struct {
	name string // ".name", or "" for an index
	idx  int
}

func (w *floatWalker) pathString() string {
	var b strings.Builder
	for _, p := range w.path {
		if p.name != "" {
			b.WriteString(p.name)
		} else {
			b.WriteString("[" + itoa(p.idx) + "]")
		}
	}
	return b.String()
}

func (w *floatWalker) push(name string, idx int) { w.path = append(w.path, pathPart{name, idx}) }
func (w *floatWalker) pop()                      { w.path = w.path[:len(w.path)-1] }

func (w *floatWalker) walk(v reflect.Value) {
	if v.Type().Implements(marshaler) || (v.CanAddr() && v.Addr().Type().Implements(marshaler)) {
		return // its own MarshalJSON writes non-finite values as null
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		w.float(v)
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			w.walk(v.Elem())
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if f.Anonymous {
				w.walk(v.Field(i))
				continue
			}
			w.push("."+name, 0)
			w.walk(v.Field(i))
			w.pop()
		}
	case reflect.Slice, reflect.Array:
		if !mayHoldFloats(v.Type().Elem()) {
			return
		}
		// Floats without a MarshalJSON of their own (the series) are
		// checked without asking each element for one.
		et := v.Type().Elem()
		plain := et.Kind() == reflect.Float64 && !et.Implements(marshaler) && !reflect.PointerTo(et).Implements(marshaler)
		for i := 0; i < v.Len(); i++ {
			w.push("", i)
			if plain {
				w.float(v.Index(i))
			} else {
				w.walk(v.Index(i))
			}
			w.pop()
		}
	case reflect.Map:
		if v.Type().Elem().Kind() == reflect.Float64 {
			for _, k := range v.MapKeys() {
				if f := v.MapIndex(k).Float(); math.IsNaN(f) || math.IsInf(f, 0) {
					w.push("."+fmt.Sprint(k.Interface()), 0)
					w.bad = append(w.bad, w.pathString())
					w.pop()
					v.SetMapIndex(k, reflect.ValueOf(0.0))
				}
			}
			return
		}
		if !mayHoldFloats(v.Type().Elem()) {
			return
		}
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			w.push("."+fmt.Sprint(k.Interface()), 0)
			w.walk(e)
			w.pop()
			v.SetMapIndex(k, e)
		}
	}
}

// float names v and sets it to 0 when it is not a finite number.
func (w *floatWalker) float(v reflect.Value) {
	if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
		w.bad = append(w.bad, w.pathString())
		if v.CanSet() {
			v.SetFloat(0)
		}
	}
}

// mayHoldFloats reports whether a value of type t can hold a float that
// walk would visit (strings, integers and booleans need no visit).
func mayHoldFloats(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return false
	}
	return true
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}
