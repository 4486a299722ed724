package detect_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// TestFactsOfTheDemo: the demo's attacks show in its session facts as the
// hub needs them: the guessing run's refusals with its distinct
// credentials, the snooper's wildcard subscriptions, the devices' accepted
// sessions; no password anywhere.
func TestFactsOfTheDemo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo.pcapng.gz")
	b, _ := io.ReadAll(demo.Open())
	os.WriteFile(path, b, 0o644)
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	c := detect.NewFactCollector()
	if _, err := pipeline.New(pipeline.Options{}, c).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	f := c.Take()
	if f == nil || c.Take() != nil {
		t.Fatal("no facts, or facts twice")
	}
	var refused, distinct, wildcard, accepted, granted int64
	for _, a := range f.Auth {
		refused += a.Refused
		distinct += a.Distinct
	}
	for _, cl := range f.Clients {
		wildcard += cl.Wildcard
		accepted += cl.Accepted
		granted += cl.Granted
	}
	if refused < 10 || distinct < 3 || wildcard == 0 || accepted < 10 || granted == 0 || f.Over != 0 {
		t.Errorf("refused %d (distinct %d), wildcard %d, accepted %d, granted %d, over %d", refused, distinct, wildcard, accepted, granted, f.Over)
	}
	// The demo's guesses ("letmein0", ...) are in its CONNECTs, not in
	// the facts.
	js, _ := json.Marshal(f)
	if bytes.Contains(js, []byte("letmein")) || bytes.Contains(js, []byte("qwerty")) {
		t.Error("a password in the facts")
	}
}

// TestFactsBounded: one interval keeps at most MaxFactKeys client IDs and
// counts the rest.
func TestFactsBounded(t *testing.T) {
	c := detect.NewFactCollector()
	fr := &pipeline.Frame{TS: 1}
	for i := 0; i < detect.MaxFactKeys+100; i++ {
		s := &pipeline.Session{ClientID: fmt.Sprintf("c%d", i)}
		c.OnMQTT(&pipeline.MQTT{Frame: fr, Session: s, FromClient: true, Pkt: &mqtt.Packet{Type: mqtt.PINGREQ}})
	}
	f := c.Take()
	if len(f.Clients) != detect.MaxFactKeys || f.Over != 100 {
		t.Errorf("%d clients kept, %d over", len(f.Clients), f.Over)
	}
}
