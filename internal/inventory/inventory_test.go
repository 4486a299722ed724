package inventory

import (
	"context"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// TestDemoInventory: every device of the demo ward is listed with the role
// and kind its sensor has in the simulator (bed{N}-{sensor}, env-{sensor}).
func TestDemoInventory(t *testing.T) {
	in, err := pipeline.NewInput("demo", demo.Open())
	if err != nil {
		t.Fatal(err)
	}
	inv := New(Options{})
	if _, err := pipeline.New(pipeline.Options{}, inv).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ecg": "ECG monitor", "spo2": "pulse oximeter", "air": "airflow sensor", "bp": "blood pressure monitor",
		"pump": "infusion pump", "glu": "glucometer", "temp": "body temperature sensor", "emg": "EMG sensor", "gsr": "GSR sensor",
		"control": "bed control unit"}
	devs := inv.Devices()
	seen := 0
	for _, d := range devs {
		switch {
		case strings.HasPrefix(d.Key, "broker:"):
			if d.Role != "broker" {
				t.Errorf("%s: role %s", d.Key, d.Role)
			}
		case strings.HasPrefix(d.Key, "bed"):
			sensor := d.Key[strings.Index(d.Key, "-")+1:]
			if d.Kind != want[sensor] {
				t.Errorf("%s: kind %q (%s), want %q", d.Key, d.Kind, d.KindEvidence, want[sensor])
			}
			if role := map[bool]string{true: "actuator", false: "sensor"}[sensor == "control"]; d.Role != role {
				t.Errorf("%s: role %s, want %s", d.Key, d.Role, role)
			}
			if d.Credential != "password" || d.Transport != "cleartext" || len(d.Addrs) != 1 || len(d.MACs) != 0 && len(d.MACs[0]) != 17 {
				t.Errorf("%s: %+v", d.Key, d)
			}
			seen++
		case strings.HasPrefix(d.Key, "env-"):
			if d.Kind != "environment sensor" || d.Role != "sensor" {
				t.Errorf("%s: %s %s (%s)", d.Key, d.Role, d.Kind, d.KindEvidence)
			}
		case d.Key == "nurse-station":
			if d.Role != "monitor" || d.Kind != "nurse station" {
				t.Errorf("nurse-station: %s %s", d.Role, d.Kind)
			}
		}
	}
	if seen != 20 {
		t.Errorf("%d bed devices, want 20 (2 beds x 10)", seen)
	}
	if inv.Evicted != 0 {
		t.Errorf("evicted %d", inv.Evicted)
	}
}
