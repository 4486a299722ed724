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
	var bad []string
	walkFloats(reflect.ValueOf(r).Elem(), "", &bad)
	for i, p := range bad {
		if i == 10 {
			r.Warnings = append(r.Warnings, "analysis.json: more values were not finite numbers")
			break
		}
		r.Warnings = append(r.Warnings, "analysis.json: "+p+" was not a finite number (written as 0)")
	}
}

var marshaler = reflect.TypeFor[json.Marshaler]()

func walkFloats(v reflect.Value, path string, bad *[]string) {
	if v.Type().Implements(marshaler) || (v.CanAddr() && v.Addr().Type().Implements(marshaler)) {
		return // its own MarshalJSON writes non-finite values as null
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			*bad = append(*bad, path)
			if v.CanSet() {
				v.SetFloat(0)
			}
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkFloats(v.Elem(), path, bad)
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
			p := path + "." + name
			if f.Anonymous {
				p = path
			}
			walkFloats(v.Field(i), p, bad)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walkFloats(v.Index(i), path+"["+itoa(i)+"]", bad)
		}
	case reflect.Map:
		if v.Type().Elem().Kind() == reflect.Float64 {
			for _, k := range v.MapKeys() {
				if f := v.MapIndex(k).Float(); math.IsNaN(f) || math.IsInf(f, 0) {
					*bad = append(*bad, path+"."+fmt.Sprint(k.Interface()))
					v.SetMapIndex(k, reflect.ValueOf(0.0))
				}
			}
			return
		}
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			walkFloats(e, path+"."+fmt.Sprint(k.Interface()), bad)
			v.SetMapIndex(k, e)
		}
	}
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
