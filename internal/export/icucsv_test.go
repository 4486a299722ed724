package export_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/iomtguard/iomtguard/internal/export"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// TestReleasedRoundTrip reads the released excerpt and writes it back in the
// released dialect: the bytes must be the file's.
func TestReleasedRoundTrip(t *testing.T) {
	const path = "../../testdata/icu-dataset/environmentMonitoring_excerpt.csv"
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	x := export.NewICUCSV(&buf, export.DialectReleased, "", "")
	x.Payloads = true
	sum, err := pipeline.New(pipeline.Options{}, x).Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if sum.Frames != 38 || len(sum.Warnings) != 0 {
		t.Fatalf("frames %d, warnings %v", sum.Frames, sum.Warnings)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("round trip differs:\n%s", firstDiff(buf.Bytes(), want))
	}
}

// TestPayloadsOffByDefault checks that the payload columns stay empty unless asked for.
func TestPayloadsOffByDefault(t *testing.T) {
	in, err := pipeline.OpenInput("../../testdata/captures/mqtt5.pcap")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	x := export.NewICUCSV(&buf, export.DialectTshark, "", "")
	if _, err := pipeline.New(pipeline.Options{}, x).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	x.Close()
	for _, secret := range []string{"12.5 ml/h", "31322e35206d6c2f68", "s3cret"} {
		if bytes.Contains(buf.Bytes(), []byte(secret)) {
			t.Errorf("export holds %q without --payloads", secret)
		}
	}
}

func firstDiff(a, b []byte) string {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := 0; i < len(la) && i < len(lb); i++ {
		if !bytes.Equal(la[i], lb[i]) {
			return "line " + strconv.Itoa(i+1) + ":\n got  " + string(la[i]) + "\n want " + string(lb[i])
		}
	}
	return "lengths differ"
}
