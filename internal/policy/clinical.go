package policy

import (
	"regexp"
	"strings"
)

// clinicalWords are topic levels that name a clinical quantity or record
// (compared case-insensitively, ignoring '-', '_' and digits around them).
var clinicalWords = map[string]bool{
	"patient": true, "patients": true, "vitals": true, "vital": true, "ecg": true, "ekg": true, "spo2": true,
	"oximeter": true, "pulseox": true, "bp": true, "nibp": true, "ibp": true, "bloodpressure": true, "pulse": true,
	"heartrate": true, "hr": true, "resp": true, "respiration": true, "rr": true, "etco2": true, "glucose": true,
	"glu": true, "insulin": true, "infusion": true, "pump": true, "dose": true, "dosage": true, "medication": true,
	"emg": true, "eeg": true, "gsr": true, "airflow": true, "bodytemp": true, "mrn": true,
	"ehr": true, "emr": true, "hl7": true, "fhir": true, "alarm": true, "alarms": true, "ventilator": true,
}

// ClinicalTopic reports whether topic carries patient data: it matches one
// of ClinicalTopics or, when none are configured, one of its levels names a
// clinical quantity (patient, vitals, ecg, spo2, bp, pulse, glucose, insulin,
// infusion, pump, dose, emg, eeg, alarm, hl7, fhir, ...).
func (p *Policy) ClinicalTopic(topic string) bool {
	if len(p.ClinicalTopics) > 0 {
		for _, f := range p.ClinicalTopics {
			if TopicMatch(string(f), topic) {
				return true
			}
		}
		return false
	}
	for rest, more := topic, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		w := wordSeparators.Replace(strings.ToLower(level))
		if clinicalWords[w] || clinicalWords[strings.Trim(w, "0123456789")] {
			return true
		}
	}
	return false
}

// wordSeparators removes what may separate a clinical word's parts. Made
// once: building a Replacer for every level of every topic was 18 s of 20
// on a capture of 1M distinct topics (a flood of made-up topics).
var wordSeparators = strings.NewReplacer("-", "", "_", "", " ", "")

// DefaultPHIPatterns find patient identifiers: a medical record number, a
// person's name in a name field, a date of birth, a US social security
// number, an HL7 v2 PID segment and a FHIR Patient resource.
var DefaultPHIPatterns = []Pattern{
	{"mrn", regexp.MustCompile(`(?i)\b(mrn|medical[ _-]?record[ _-]?(no|number)?|patient[ _-]?id)\b["']?\s*[:=#]\s*["']?[A-Z0-9-]{4,}`)},
	{"person-name", regexp.MustCompile(`(?i:\b(patient[ _-]?name|full[ _-]?name|name)\b)["']?\s*[:=]\s*["']?[A-Z][a-z]+[ ,]+[A-Z][a-z]+`)},
	{"date-of-birth", regexp.MustCompile(`(?i)\b(dob|date[ _-]?of[ _-]?birth|birth[ _-]?date)\b["']?\s*[:=]\s*["']?(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{8})`)},
	{"ssn", regexp.MustCompile(`\b\d{3}-\d{2}-\d{4}\b`)},
	{"hl7-pid", regexp.MustCompile(`(^|[\r\n])PID\|`)},
	{"fhir-patient", regexp.MustCompile(`"resourceType"\s*:\s*"Patient"`)},
}

// PHI returns the identifier patterns in force.
func (p *Policy) PHI() []Pattern {
	if len(p.PHIPatterns) > 0 {
		return p.PHIPatterns
	}
	return DefaultPHIPatterns
}
