package baseline_test

import (
	"bytes"
	"compress/gzip"
	"testing"

	"github.com/iomtguard/iomtguard/internal/baseline"
)

// FuzzRead: a baseline file, however damaged, is read or refused, never a
// panic; one read scores without a panic or a hang (its forest is checked).
func FuzzRead(f *testing.F) {
	gz := func(s string) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.Bytes()
	}
	f.Add(gz(`{"tool":"iomtguard","version":1,"forest":{"sample":2,"trees":[{"nodes":[{"f":0,"c":0.5,"l":1,"r":2},{"f":-1,"n":1},{"f":-1,"n":1}]}]},"forest_threshold":0.6,"deviation_threshold":4}`))
	f.Add(gz(`{"tool":"iomtguard","version":1,"forest":{"sample":2,"trees":[{"nodes":[{"f":0,"c":0.5,"l":0,"r":0}]}]},"forest_threshold":0.6,"deviation_threshold":4}`))
	f.Add(gz(`{"tool":"iomtguard","version":1,"devices":{"a":{"windows":5,"n":[1,1,1,1,1,1,1,1,1,1,1,1],"mean":[1,1,1,1,1,1,1,1,1,1,1,1],"m2":[1,1,1,1,1,1,1,1,1,1,1,1]}}}`))
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := baseline.Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		x := make([]float64, 2*baseline.NumFeatures)
		for i := range x {
			x[i] = float64(i%7) - 3
		}
		b.Forest.Score(x)
	})
}
