package detect

import "time"

// Models carries what the models found once the pass is over, for the
// detectors that report behaviour (anomaly.traffic, anomaly.outlier).
type Models struct {
	Start           time.Time
	SeriesInterval  time.Duration
	SeriesMetric    string
	SeriesAnomalies []SeriesAnomaly
	Outliers        []Outlier
}

// SeriesAnomaly is an anomalous interval of the traffic series.
type SeriesAnomaly struct {
	Time                             time.Time
	Observed, Expected, Lower, Upper float64
	Score                            float64
	Reason                           string
}

// Outlier is a rare k-means point far from its centroid.
type Outlier struct {
	Features []string
	X        []float64
	Count    int64
	Score    float64
	Frame    int
	Time     time.Time
}
