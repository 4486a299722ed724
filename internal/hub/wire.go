// Package hub links sensors (iomtguard watch on a ward's mirror port) to a
// hub that sees the whole hospital group, through NATS JetStream. A sensor
// publishes what the hub needs, not packets: each closed minute's analysis
// State (mergeable: the hub's merge of a site's minutes is analyze's result
// for that site's frames), its incident events and its inventory changes.
// The hub keeps them in its history (internal/history), from which
// `iomtguard report --db` writes the group's report or one site's.
//
// Subjects: iomtguard.sensor.SITE.SENSOR.minute and .event, in one stream,
// IOMTGUARD, stored on disk. Each message carries a Nats-Msg-Id made of the
// site, sensor, run and number (JetStream drops a copy published again
// within its duplicate window) and the hub's writes are idempotent (a
// minute is keyed by source, run and minute; an incident by source and the
// sensor's number), so a redelivery after a crash changes nothing.
package hub

import (
	"fmt"
	"regexp"
)

// Stream is the JetStream stream every sensor publishes into.
const Stream = "IOMTGUARD"

// SubjectRoot prefixes every sensor subject.
const SubjectRoot = "iomtguard.sensor"

// Message kinds (the subject's last token).
const (
	KindMinute = "minute"
	KindEvent  = "event"
)

// Headers of a sensor's messages.
const (
	HeaderRun    = "Iomtguard-Run"    // the sensor's run (its start, ns)
	HeaderSeq    = "Iomtguard-Seq"    // the minute's number in the run: 1, 2, ... (a gap is a lost minute)
	HeaderMinute = "Iomtguard-Minute" // capture minute (Unix minutes)
	HeaderFrames = "Iomtguard-Frames"
)

// DefaultMaxPayload is the largest message the embedded server takes: a
// minute with its Figure 1 values at tens of thousands of frames a second
// packs to a few megabytes. Larger minutes are sent sketched.
const DefaultMaxPayload = 8 << 20

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// CheckName checks a site or sensor name: one subject token (letters,
// digits, - and _), as NATS permissions and subjects need it; "group" is
// the hub's own (its cross-site incidents and its dashboard's group view).
func CheckName(what, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%s %q: use 1 to 64 letters, digits, - or _ (it is part of NATS subjects)", what, s)
	}
	if s == "group" {
		return fmt.Errorf("%s %q: reserved for the hub's group-wide view", what, s)
	}
	return nil
}

// InboxPrefix is where an identity receives replies (the stream's
// acknowledgements, a hub's fetched messages): its own, so that no other
// identity may subscribe to them.
func InboxPrefix(identity string) string { return "_INBOX." + identity }

// Subject is the subject of a sensor's messages of one kind.
func Subject(site, sensor, kind string) string {
	return SubjectRoot + "." + site + "." + sensor + "." + kind
}

// Source is how the hub's history names a sensor: SITE/SENSOR.
func Source(site, sensor string) string { return site + "/" + sensor }

// parseSubject splits a sensor subject.
func parseSubject(subj string) (site, sensor, kind string, ok bool) {
	var parts [5]string
	n := 0
	start := 0
	for i := 0; i <= len(subj); i++ {
		if i == len(subj) || subj[i] == '.' {
			if n == len(parts) {
				return "", "", "", false
			}
			parts[n] = subj[start:i]
			n++
			start = i + 1
		}
	}
	if n != 5 || parts[0]+"."+parts[1] != SubjectRoot || !nameRE.MatchString(parts[2]) || !nameRE.MatchString(parts[3]) {
		return "", "", "", false
	}
	return parts[2], parts[3], parts[4], true
}
