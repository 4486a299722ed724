package hub

import "time"

// clocks keeps, per sensor, how far its facts have come in capture time
// and when the hub last heard from it, so that the cross-site incidents
// are judged at a time every active sensor has reached.
//
// Judged at the group's newest fact, a sensor ahead of another (a replay
// at full speed, a ward whose minutes came first) made the tracker close
// as quiet an incident whose evidence the slower sensor's minutes were
// still extending (a clone's overlap ends where the slower copy's minutes
// end so far), and open a second one when they came: one cloned identity
// reported as two incidents, the first closed.
type clocks map[string]sensorClock

type sensorClock struct {
	newest int64     // the end of its newest facts (capture time, ns)
	heard  time.Time // when they arrived (the hub's clock)
}

const (
	// activeFor is how long after its last facts a sensor still holds the
	// judging time back: a live sensor sends each minute's facts as the
	// minute ends, so three minutes allow for a late one. A sensor that
	// stops (a replay that ended, a sensor switched off) is not waited for
	// after that.
	activeFor = 3 * time.Minute
	// maxLag is how far behind the group's newest fact a sensor may hold
	// the judging time: one with a clock more than an hour behind (broken,
	// or replaying an old capture) is not waited for, or a group incident
	// would never close.
	maxLag = int64(time.Hour)
	// maxClocks bounds the sensors remembered; past it the one heard from
	// longest ago is forgotten.
	maxClocks = 4096
)

// heard records facts from src that end at to, arriving at wall.
func (c clocks) heard(src string, to int64, wall time.Time) {
	sc, ok := c[src]
	if !ok && len(c) >= maxClocks {
		oldest := ""
		for s, o := range c {
			if oldest == "" || o.heard.Before(c[oldest].heard) {
				oldest = s
			}
		}
		delete(c, oldest)
	}
	c[src] = sensorClock{newest: max(sc.newest, to), heard: wall}
}

// judgeAt is the capture time to judge at: the oldest newest fact among
// the sensors heard from within activeFor of wall and no more than maxLag
// behind newest (the group's newest fact); newest itself when no sensor
// qualifies, and 0 before any fact.
func (c clocks) judgeAt(newest int64, wall time.Time) int64 {
	at := newest
	for s, sc := range c {
		if wall.Sub(sc.heard) > 24*time.Hour {
			delete(c, s) // a sensor gone for a day
			continue
		}
		if wall.Sub(sc.heard) <= activeFor && sc.newest >= newest-maxLag {
			at = min(at, sc.newest)
		}
	}
	return at
}
