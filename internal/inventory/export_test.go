package inventory

import (
	"bytes"
	"context"
	"encoding/csv"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

func demoDevices(t *testing.T) []Device {
	t.Helper()
	in, err := pipeline.NewInput("demo", demo.Open())
	if err != nil {
		t.Fatal(err)
	}
	inv := New(Options{})
	if _, err := pipeline.New(pipeline.Options{}, inv).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	return inv.Devices()
}

// TestExportRoundTrip: the JSON and the CSV of an inventory read back to
// the same devices (the CSV keeps every field Compare looks at).
func TestExportRoundTrip(t *testing.T) {
	devs := demoDevices(t)
	var j, c bytes.Buffer
	if err := WriteJSON(&j, []string{"demo"}, time.Unix(0, 0), devs); err != nil {
		t.Fatal(err)
	}
	if err := WriteCSV(&c, devs); err != nil {
		t.Fatal(err)
	}
	fromJSON, err := ReadJSON(&j)
	if err != nil {
		t.Fatal(err)
	}
	fromCSV, err := ReadCSV(&c)
	if err != nil {
		t.Fatal(err)
	}
	if len(fromJSON) != len(devs) || len(fromCSV) != len(devs) {
		t.Fatalf("read %d (JSON) and %d (CSV) devices of %d", len(fromJSON), len(fromCSV), len(devs))
	}
	for i := range devs {
		if !reflect.DeepEqual(fromJSON[i].Addrs, devs[i].Addrs) || fromJSON[i].Key != devs[i].Key || !fromJSON[i].LastSeen.Equal(devs[i].LastSeen) {
			t.Fatalf("JSON device %d: %+v, wrote %+v", i, fromJSON[i], devs[i])
		}
	}
	if d := Compare(fromJSON, fromCSV); !d.Empty() {
		t.Fatalf("the CSV differs from the JSON: %+v", d)
	}
	// An analysis.json and a bare list are inventories too.
	for _, doc := range []string{`{"tool":"iomtguard","inventory":[{"key":"a"}]}`, `[{"key":"a"}]`} {
		got, err := ReadJSON(strings.NewReader(doc))
		if err != nil || len(got) != 1 || got[0].Key != "a" {
			t.Errorf("%s: %v %v", doc, got, err)
		}
	}
	for _, bad := range []string{`{"tool":"iomtguard"}`, `not json`, ``} {
		if _, err := ReadJSON(strings.NewReader(bad)); err == nil {
			t.Errorf("%q read as an inventory", bad)
		}
	}
	for _, bad := range []string{"", "a,b\n1,2\n", "key,role\n,sensor\n", "key\n\"unterminated\n"} {
		if _, err := ReadCSV(strings.NewReader(bad)); err == nil {
			t.Errorf("CSV %q read as an inventory", bad)
		}
	}
}

// TestCompare: new, gone and changed devices, and which changes weaken a
// device or widen whom it talks to.
func TestCompare(t *testing.T) {
	base := func(key string) Device {
		return Device{Key: key, Role: "sensor", Kind: "infusion pump", Addrs: []string{"10.0.0.5"}, Transport: "tls",
			Credential: "certificate", Identity: key, Published: []string{"icu/" + key + "/rate"}, Brokers: []string{"10.0.0.1:8883"}}
	}
	old := []Device{base("pump1"), base("pump2"), base("pump3"), base("pump4"), base("gone")}
	cur := []Device{base("pump1"), base("pump2"), base("pump3"), base("pump4"), base("newcomer")}
	// pump2 loses TLS and its certificate: worse.
	cur[1].Transport, cur[1].Credential, cur[1].Identity = "cleartext", "password", ""
	// pump3 publishes to a new topic and talks to a new broker: worse.
	cur[2].Published = append(cur[2].Published, "icu/pump3/dose")
	cur[2].Brokers = append(cur[2].Brokers, "203.0.113.9:1883")
	// pump4 moves address and stops publishing one topic: a change, not worse.
	cur[3].Addrs, cur[3].Published = []string{"10.0.0.6"}, nil
	d := Compare(old, cur)
	if len(d.New) != 1 || d.New[0].Key != "newcomer" || len(d.Gone) != 1 || d.Gone[0].Key != "gone" {
		t.Fatalf("new %v, gone %v", d.New, d.Gone)
	}
	want := map[string]bool{"pump2": true, "pump3": true, "pump4": false}
	if len(d.Changed) != len(want) {
		t.Fatalf("changed: %+v", d.Changed)
	}
	for _, c := range d.Changed {
		w, ok := want[c.Key]
		if !ok || c.Worse != w || len(c.Changes) == 0 {
			t.Errorf("%s: worse %v (want %v): %v", c.Key, c.Worse, w, c.Changes)
		}
	}
	joined := strings.Join(d.Changed[1].Changes, "; ")
	if !strings.Contains(joined, "new topics published: icu/pump3/dose") || !strings.Contains(joined, "new brokers: 203.0.113.9:1883") {
		t.Errorf("pump3: %s", joined)
	}
	// Gaining TLS and a certificate is a change for the better.
	up := []Device{base("p")}
	down := []Device{base("p")}
	down[0].Transport, down[0].Credential, down[0].Identity = "cleartext", "password", ""
	if c := Compare(down, up).Changed; len(c) != 1 || c[0].Worse {
		t.Errorf("TLS gained: %+v", c)
	}
	if !Compare(old, old).Empty() {
		t.Error("an inventory differs from itself")
	}
}

// FuzzReadInventory: the inventory readers (files a person hands to
// inventory diff) never panic.
func FuzzReadInventory(f *testing.F) {
	f.Add([]byte(`{"devices":[{"key":"a","addresses":["10.0.0.1"]}]}`))
	f.Add([]byte("key,role,addresses\nbed1-ecg,sensor,10.0.0.2 10.0.0.3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadJSON(bytes.NewReader(b))
		ReadCSV(bytes.NewReader(b))
	})
}

// TestCSVHostileCells: a cell that a spreadsheet would run as a formula is
// defused, lists whose elements hold spaces survive, and both read back.
func TestCSVHostileCells(t *testing.T) {
	devs := []Device{
		{Key: "=cmd|' /C calc'!A0", ClientID: "=cmd|' /C calc'!A0", Role: "sensor", Published: []string{"key: val", "a b", "+x"}},
		{Key: "@sum", ClientID: "-1+1", Published: []string{"[x", "y"}, Subscribed: []string{"a", "b"}},
		{Key: "'=quoted", Addrs: []string{"10.0.0.1", "10.0.0.2"}},
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, devs); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs[1:] {
		for _, c := range rec {
			if c != "" && strings.ContainsRune("=+-@", rune(c[0])) {
				t.Errorf("cell %q starts a formula", c)
			}
		}
	}
	got, err := ReadCSV(&b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range devs {
		if got[i].Key != devs[i].Key || got[i].ClientID != devs[i].ClientID || !slices.Equal(got[i].Published, devs[i].Published) ||
			!slices.Equal(got[i].Subscribed, devs[i].Subscribed) || !slices.Equal(got[i].Addrs, devs[i].Addrs) {
			t.Errorf("device %d: read %+v, wrote %+v", i, got[i], devs[i])
		}
	}
	// An analysis.json of a capture without devices is an empty inventory;
	// a bare null is not an inventory.
	if d, err := ReadJSON(strings.NewReader(`{"tool":"iomtguard","overview":{},"inventory":null}`)); err != nil || len(d) != 0 {
		t.Errorf("analysis.json without devices: %v %v", d, err)
	}
	if _, err := ReadJSON(strings.NewReader(`null`)); err == nil {
		t.Error("null read as an inventory")
	}
}
