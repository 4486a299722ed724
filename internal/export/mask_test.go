package export_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/dataset"
	"github.com/iomtguard/iomtguard/internal/export"
	"github.com/iomtguard/iomtguard/internal/pcaptest"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

type icuRow struct {
	src, dst string
	payload  []byte
}

// icuExport exports path (payloads on) and returns its rows.
func icuExport(t *testing.T, path string, d export.Dialect, reveal bool, opts pipeline.Options) ([]icuRow, []byte) {
	t.Helper()
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	x := export.NewICUCSV(&buf, d, "", "")
	x.Payloads, x.RevealCredentials = true, reveal
	if _, err := pipeline.New(opts, x).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	r := csv.NewReader(bytes.NewReader(buf.Bytes()))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var rows []icuRow
	for _, rec := range recs[1:] {
		p := strings.ReplaceAll(rec[dataset.ColPayload], ":", "")
		if p == "0" {
			p = ""
		}
		b, err := hex.DecodeString(p)
		if err != nil {
			t.Fatalf("tcp.payload %q: %v", rec[dataset.ColPayload], err)
		}
		rows = append(rows, icuRow{rec[dataset.ColIPSrc], rec[dataset.ColIPDst], b})
	}
	return rows, buf.Bytes()
}

// leaks returns the credentials (or any 6-byte piece of one) that out
// holds as text, as hex or as colon-separated hex.
func leaks(out []byte, secrets []string) []string {
	var found []string
	low := bytes.ToLower(out)
	for _, s := range secrets {
		for i := 0; i+6 <= len(s); i++ {
			piece := s[i : i+6]
			h := hex.EncodeToString([]byte(piece))
			var colon []string
			for j := 0; j < len(h); j += 2 {
				colon = append(colon, h[j:j+2])
			}
			if bytes.Contains(out, []byte(piece)) || bytes.Contains(low, []byte(h)) || bytes.Contains(low, []byte(strings.Join(colon, ":"))) {
				found = append(found, fmt.Sprintf("%q (piece %q of %q)", piece, piece, s))
				break
			}
		}
	}
	return found
}

// TestMaskCredentials: the credential capture exported with payloads holds
// no credential, nor any piece of one, in any dialect, with either buffer
// size, in either reassembly mode; masking keeps every length, changes bytes
// only to '*', and on the connections where credentials can be placed
// exactly masks them and nothing else. With RevealCredentials the export
// is tshark's, credentials included (the grep is shown to find them).
func TestMaskCredentials(t *testing.T) {
	cc := pcaptest.Credentials()
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials.pcap")
	if err := os.WriteFile(path, cc.Pcap, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, reorder := range []bool{false, true} {
		for _, buffer := range []int{0, 16 << 20} {
			for _, d := range []export.Dialect{export.DialectTshark, export.DialectReleased} {
				name := fmt.Sprintf("reorder=%v/buffer=%d/dialect=%d", reorder, buffer, d)
				t.Run(name, func(t *testing.T) {
					opts := pipeline.Options{MaxPacketBuffer: buffer, Flows: tcpstream.Options{Reorder: reorder}}
					masked, out := icuExport(t, path, d, false, opts)
					revealed, outRevealed := icuExport(t, path, d, true, opts)
					if l := leaks(out, cc.Secrets); len(l) > 0 {
						t.Errorf("masked export holds %d credentials: %v", len(l), l)
					}
					if l := leaks(outRevealed, cc.Secrets); len(l) < len(cc.Exact) {
						t.Errorf("the revealed export shows only %d credentials (want at least %d): the grep is blind", len(l), len(cc.Exact))
					}
					checkMasking(t, cc, masked, revealed)
				})
			}
		}
	}
}

func checkMasking(t *testing.T, cc pcaptest.CredentialCapture, masked, revealed []icuRow) {
	t.Helper()
	if len(masked) != len(revealed) {
		t.Fatalf("%d rows masked, %d revealed", len(masked), len(revealed))
	}
	want := 0
	for s, n := range cc.ExactCopies {
		want += len(s) * n
	}
	got := 0
	wsFrames := 0
	for i := range masked {
		m, r := masked[i], revealed[i]
		if len(m.payload) != len(r.payload) {
			t.Fatalf("row %d: masked payload %d bytes, revealed %d", i+2, len(m.payload), len(r.payload))
		}
		var run []byte
		flush := func() {
			if len(run) == 0 {
				return
			}
			if strings.HasPrefix(m.dst, "10.9.1.") || strings.HasPrefix(m.src, "10.9.1.") {
				ok := false
				for _, s := range cc.Exact {
					ok = ok || strings.Contains(s, string(run))
				}
				if !ok {
					t.Errorf("row %d: masked %q, which is no credential", i+2, run)
				}
			}
			run = run[:0]
		}
		for j := range m.payload {
			if m.payload[j] == r.payload[j] {
				flush()
				continue
			}
			if m.payload[j] != pipeline.MaskByte {
				t.Fatalf("row %d byte %d: %#x became %#x, not the mask", i+2, j, r.payload[j], m.payload[j])
			}
			run = append(run, r.payload[j])
			if strings.HasPrefix(m.dst, "10.9.1.") || strings.HasPrefix(m.src, "10.9.1.") {
				got++
			}
		}
		flush()
		// WebSocket: the client's frames after its upgrade request carry the
		// CONNECT (its password XOR-masked, or compressed): masked whole.
		if strings.HasPrefix(m.dst, "10.9.2.3") && len(r.payload) > 0 && !bytes.HasPrefix(r.payload, []byte("GET ")) {
			wsFrames++
			if !bytes.Equal(m.payload, bytes.Repeat([]byte{pipeline.MaskByte}, len(m.payload))) {
				t.Errorf("row %d: WebSocket frame carrying a CONNECT not masked whole: %x", i+2, m.payload)
			}
		}
	}
	if got != want {
		t.Errorf("masked %d bytes on the exactly placed connections, their credentials hold %d", got, want)
	}
	if wsFrames != 4 {
		t.Errorf("%d WebSocket client frames checked, want 4", wsFrames)
	}
}

// TestMaskCredentialsCSVInput: an ICU CSV that holds passwords (as the
// released dataset files do) exported again is masked too, and JSON lines
// never hold them, with or without payloads.
func TestMaskCredentialsCSVInput(t *testing.T) {
	cc := pcaptest.Credentials()
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials.pcap")
	if err := os.WriteFile(path, cc.Pcap, 0o644); err != nil {
		t.Fatal(err)
	}
	_, revealed := icuExport(t, path, export.DialectReleased, true, pipeline.Options{})
	csvPath := filepath.Join(dir, "revealed.csv")
	if err := os.WriteFile(csvPath, revealed, 0o644); err != nil {
		t.Fatal(err)
	}
	if l := leaks(revealed, cc.Exact); len(l) == 0 {
		t.Fatal("the revealed CSV holds no credential: the test proves nothing")
	}
	masked, out := icuExport(t, csvPath, export.DialectReleased, false, pipeline.Options{})
	if l := leaks(out, cc.Secrets); len(l) > 0 {
		t.Errorf("CSV input exported again holds %d credentials: %v", len(l), l)
	}
	again, _ := icuExport(t, csvPath, export.DialectReleased, true, pipeline.Options{})
	if len(masked) != len(again) {
		t.Fatalf("rows %d and %d", len(masked), len(again))
	}
	for _, input := range []string{path, csvPath} {
		for _, payloads := range []bool{false, true} {
			in, err := pipeline.OpenInput(input)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			x := export.NewJSONL(&buf, export.JSONLOptions{Payloads: payloads})
			if _, err := pipeline.New(pipeline.Options{}, x).Run(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			x.Close()
			if l := leaks(buf.Bytes(), cc.Secrets); len(l) > 0 {
				t.Errorf("jsonl of %s (payloads %v) holds %v", filepath.Base(input), payloads, l)
			}
		}
	}
}
