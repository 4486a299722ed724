package seal

import (
	"crypto/ed25519"
	"fmt"
	"testing"
)

// BenchmarkSeal and BenchmarkOpen measure each suite on a 64-byte reading
// (a JSON vital sign), one-shot and in sessions (100 messages a session),
// and report the envelope's overhead in bytes per message.
//
//	go test ./seal -run - -bench . -benchmem
func BenchmarkSeal(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			k, _ := GenerateKey(c.suite)
			sl := sealerFor(b, k, c.opts)
			pt := make([]byte, 64)
			var total int
			b.ReportAllocs()
			for b.Loop() {
				env, err := sl.Seal("ward3/bed1/spo2", pt)
				if err != nil {
					b.Fatal(err)
				}
				total += len(env) - len(pt)
			}
			b.ReportMetric(float64(total)/float64(b.N), "overhead-B/msg")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			k, _ := GenerateKey(c.suite)
			sl := sealerFor(b, k, c.opts)
			pt := make([]byte, 64)
			const n = 1000
			envs := make([][]byte, n)
			for i := range envs {
				envs[i], _ = sl.Seal("ward3/bed1/spo2", pt)
			}
			oo := OpenOptions{MaxAge: -1, Window: 1 << 20}
			if c.opts.Signer != nil {
				oo.Verifiers = []ed25519.PublicKey{c.opts.Signer.Public().(ed25519.PublicKey)}
			}
			b.ReportAllocs()
			i := 0
			var o *Opener
			for b.Loop() {
				if i%n == 0 {
					o = NewOpener(k, oo) // a fresh replay window for each pass over the envelopes
				}
				if _, _, err := o.Open("ward3/bed1/spo2", envs[i%n]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

type benchCase struct {
	name  string
	suite Suite
	opts  Options
}

func benchCases() []benchCase {
	signer := ed25519.NewKeyFromSeed(make([]byte, 32))
	var cs []benchCase
	for _, s := range suites {
		cs = append(cs, benchCase{s.String(), s, Options{}})
		if s != AES256GCM {
			cs = append(cs, benchCase{s.String() + "/session", s, Options{Session: true}})
		}
	}
	cs = append(cs, benchCase{fmt.Sprintf("%s/session+ed25519", MLKEM768X25519), MLKEM768X25519, Options{Session: true, Signer: signer}})
	cs = append(cs, benchCase{fmt.Sprintf("%s+ed25519", AES256GCM), AES256GCM, Options{Signer: signer}})
	return cs
}
