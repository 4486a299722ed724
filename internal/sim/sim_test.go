package sim

import (
	"bytes"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/capture"
)

func generate(t testing.TB, opts Options) ([]byte, *GroundTruth) {
	t.Helper()
	var buf bytes.Buffer
	w, err := capture.NewPcapngWriter(&buf, capture.LinkSLL, "sim")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Link == 0 {
		opts.Link = capture.LinkSLL
	}
	g, err := Generate(opts, w)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), g
}

func TestDeterministic(t *testing.T) {
	o := Options{Duration: 30 * time.Second, Seed: 7, Attacks: []string{"bruteforce"}}
	a, _ := generate(t, o)
	b, _ := generate(t, o)
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave different bytes")
	}
	// Every attack at once, with retained records (a wildcard subscriber
	// receives them: their order must not depend on map iteration).
	all := Options{Duration: 40 * time.Second, Seed: 9, RetainPHI: true, Attacks: AttackNames(), AttackStart: 15 * time.Second, AttackDuration: 5 * time.Second}
	first, _ := generate(t, all)
	for i := 0; i < 3; i++ {
		if again, _ := generate(t, all); !bytes.Equal(first, again) {
			t.Fatal("the same seed gave different bytes with every attack")
		}
	}
	o.Seed = 8
	c, _ := generate(t, o)
	if bytes.Equal(a, c) {
		t.Fatal("another seed gave the same bytes")
	}
}

// TestLargeWard: the address plan holds every bed up to MaxBeds with one
// address per host (beds 3 and up once collided with the environment
// sensors, and bed 15 ran past the /24).
func TestLargeWard(t *testing.T) {
	for _, beds := range []int{3, 15, 20, 100, MaxBeds} {
		var buf bytes.Buffer
		w, _ := capture.NewPcapngWriter(&buf, capture.LinkSLL, "t")
		if _, err := Generate(Options{Beds: beds, Duration: 10 * time.Second, Attacks: []string{"scan"}}, w); err != nil {
			t.Errorf("%d beds: %v", beds, err)
		}
	}
	w, _ := capture.NewPcapngWriter(&bytes.Buffer{}, capture.LinkSLL, "t")
	if _, err := Generate(Options{Beds: MaxBeds + 1, Duration: 10 * time.Second}, w); err == nil {
		t.Error("more beds than the plan holds were accepted")
	}
}
