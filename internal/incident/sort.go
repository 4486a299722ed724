package incident

import "sort"

func sortEvents(evs []Event) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Incident.Seq < evs[j].Incident.Seq })
}

// sortIncidents: open before closed, then by severity, then newest first.
func sortIncidents(in []Incident) {
	sort.SliceStable(in, func(i, j int) bool {
		a, b := in[i], in[j]
		if (a.Status == Closed) != (b.Status == Closed) {
			return a.Status != Closed
		}
		if x, y := a.Severity.Rank(), b.Severity.Rank(); x != y {
			return x > y
		}
		return a.Seq > b.Seq
	})
}
