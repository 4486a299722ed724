package inventory

import (
	"fmt"
	"testing"
	"time"
)

// TestDeviceFloodBounded: 30,000 client IDs, each seen once (a botnet, or
// a client-ID flood), with one real device seen throughout: the table
// stays within MaxDevices, every device let go is counted, the ones seen
// last are kept and the real device is never let go; the "new" events
// kept until Events is called are bounded too, the rest counted.
func TestDeviceFloodBounded(t *testing.T) {
	const limit, n = 1000, 30000
	inv := New(Options{MaxDevices: limit, Warmup: time.Nanosecond})
	inv.start = 1
	ts := int64(1e9)
	pump := inv.device("bed1-pump", ts)
	for i := range n {
		ts += 1e6
		inv.device(fmt.Sprintf("bot-%06d", i), ts)
		if i%100 == 0 {
			inv.device("bed1-pump", ts)
		}
		if len(inv.devs) > limit {
			t.Fatalf("after %d devices: %d in the table, more than %d", i+1, len(inv.devs), limit)
		}
	}
	if inv.devs["bed1-pump"] != pump {
		t.Error("the device seen throughout was let go")
	}
	if got := int64(len(inv.devs)) + inv.Evicted; got != n+1 {
		t.Errorf("%d in the table and %d let go: %d, want %d", len(inv.devs), inv.Evicted, got, n+1)
	}
	for i := n - limit*9/10; i < n; i++ {
		if inv.devs[fmt.Sprintf("bot-%06d", i)] == nil {
			t.Fatalf("bot-%06d, among the last seen, was let go", i)
		}
	}
	if len(inv.events) != maxPendingEvents || inv.EventsDropped != n+1-maxPendingEvents {
		t.Errorf("%d events kept, %d dropped; want %d and %d", len(inv.events), inv.EventsDropped, maxPendingEvents, n+1-maxPendingEvents)
	}
	if evs := inv.Events(); len(evs) != maxPendingEvents || len(inv.events) != 0 {
		t.Errorf("Events gave %d and kept %d", len(evs), len(inv.events))
	}
	inv.device("late-device", ts+1e6)
	if len(inv.events) != 1 {
		t.Errorf("after Events, a new device: %d events", len(inv.events))
	}
}

// BenchmarkDeviceFlood: new devices past the table's limit, each seen once
// (a walk over the whole table for every one of them took 55 s of analyze
// on 100,000 bot connections).
func BenchmarkDeviceFlood(b *testing.B) {
	inv := New(Options{})
	ts := int64(0)
	for i := 0; b.Loop(); i++ {
		ts += 1e6
		inv.device(fmt.Sprintf("bot-%08d", i), ts)
	}
}

// TestSilentDuringFlood: a device that goes quiet while new client IDs
// flood in is reported silent, once (found by an independent review: the
// cap on pending events dropped its event while the device stayed marked
// silent, so it was never reported).
func TestSilentDuringFlood(t *testing.T) {
	inv := New(Options{Warmup: time.Nanosecond, Silent: time.Minute})
	inv.start = 1
	ts := int64(1e9)
	inv.device("bed1-pump", ts)
	inv.Events()
	ts += 5 * 60e9
	for i := range 1500 {
		inv.device(fmt.Sprintf("bot-%06d", i), ts)
	}
	inv.now = ts
	silent := 0
	for range 2 {
		for _, ev := range inv.Events() {
			if ev.Kind == "silent" && ev.Device.Key == "bed1-pump" {
				silent++
			}
		}
	}
	if silent != 1 || inv.EventsDropped != 1500-maxPendingEvents {
		t.Errorf("bed1-pump went silent: reported %d times, want 1 (%d events dropped)", silent, inv.EventsDropped)
	}
}
