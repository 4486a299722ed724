package sim

import (
	"fmt"
	"math"
	"strconv"

	"github.com/iomtguard/iomtguard/internal/mqtt"
)

// sensor is one device type of the dataset's ICU (Tables 1 and 2).
type sensor struct {
	name   string  // device name
	topic  string  // topic leaf
	lo, hi float64 // data profile
	period int64   // time profile, ns
	qos    uint8
	format func(v float64) string
}

func integer(v float64) string    { return strconv.Itoa(int(math.Round(v))) }
func oneDecimal(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', 1, 64) }

// The patient sensors of Table 2. The table gives 1 s for the fast sensors;
// the released capture (Figure 1 of the seed: tcp.time_delta quartiles
// 1.995-2.002 s) shows them publishing every 2 s, which the simulator
// follows. Topics are short, as in the dataset (tcp.len quartiles 9-12).
var patientSensors = []sensor{
	{"ECG monitor", "ecg", 55, 110, 2e9, 0, integer},
	{"pulse oximeter", "spo2", 90, 100, 2e9, 0, integer},
	{"nasal/mouth airflow", "air", 10, 25, 2e9, 0, integer},
	{"blood pressure", "bp", 95, 150, 2e9, 0, integer},
	{"infusion pump", "pump", 10, 100, 600e9, 1, integer},
	{"glucometer", "glu", 70, 150, 600e9, 0, integer},
	{"body temperature", "temp", 97, 101, 600e9, 0, oneDecimal},
	{"EMG", "emg", 0, 60, 300e9, 0, integer},
	{"GSR", "gsr", 1, 20, 300e9, 0, oneDecimal},
}

// The environment sensors of Table 1 (the dataset's topics and time profiles;
// its capture shows fire and smoke sent with QoS 1).
var environmentSensors = []sensor{
	{"air humidity", "Humidity", 30, 60, 5e9, 0, integer},
	{"air temperature", "Temperature", 19, 24, 5e9, 0, integer},
	{"CO", "CoGas", 0, 500, 2e9, 0, integer},
	{"fire", "Fire", 0, 0.4, 2e9, 1, integer},
	{"smoke", "Smoke", 300, 400, 2e9, 1, integer},
	{"barometer", "Barometer", 990, 1030, 5e9, 0, integer},
	{"solar radiation", "SolarRad", 0, 2000, 5e9, 0, integer},
}

// device is one simulated sensor instance.
type device struct {
	c     *client
	s     sensor
	topic string
	value float64
}

// startDevice connects d and publishes on its time profile until the end.
func (w *world) startDevice(d *device, at int64) {
	e := w.e
	e.at(at, func() {
		d.c.onConnack = func(rc byte) {
			if rc != 0 {
				return
			}
			// First reading after a random phase, then every period.
			var tick func()
			tick = func() {
				if !d.c.connected || e.now > w.stop {
					return
				}
				step := (d.s.hi - d.s.lo) * 0.04
				d.value += (e.rng.Float64()*2 - 1) * step
				d.value = math.Max(d.s.lo, math.Min(d.s.hi, d.value))
				d.c.publish(d.topic, []byte(d.s.format(d.value)), d.s.qos, false)
				e.after(d.s.period+e.jitter(-2_000_000, 4_000_000), tick)
			}
			e.after(e.jitter(1e8, min(d.s.period, 2e9)), tick)
		}
		d.c.onLost = func() { w.reconnect(d.c) }
		d.c.connect()
	})
}

// reconnect brings a client back after a broker-side close (as devices do),
// with a short backoff.
func (w *world) reconnect(c *client) {
	if w.e.now > w.stop {
		return
	}
	w.e.after(w.e.jitter(1e9, 3e9), func() {
		if !c.connected && w.e.now <= w.stop {
			c.connect()
		}
	})
}

// The ward's address plan: the infrastructure (broker .84, nurse station
// .90, environment sensors from .131) and beds 1 and 2 (.110-.119,
// .120-.129, as the dataset's two-bed ICU) in 10.5.126.0/24; beds 3 and up
// ten addresses each, 25 beds to a /24 from 10.5.128.0 (room for MaxBeds);
// attackers in 10.5.127.0/24.
func bedAddr(bed, i int) string {
	if bed <= 2 {
		return fmt.Sprintf("10.5.126.%d", 100+bed*10+i)
	}
	k := bed - 3
	return fmt.Sprintf("10.5.%d.%d", 128+k/25, 10*(k%25)+1+i)
}

// addBed adds a bed's nine patient sensors and its control unit.
func (w *world) addBed(bed int) {
	prefix := fmt.Sprintf("%d/", bed)
	for i, s := range patientSensors {
		h := w.e.newHost(bedAddr(bed, i), fmt.Sprintf("bed%d-%s", bed, s.topic), "patientMonitoring")
		c := w.newClient(h, fmt.Sprintf("bed%d-%s", bed, s.topic), frameTag{class: "patientMonitoring"})
		d := &device{c: c, s: s, topic: prefix + s.topic, value: s.lo + (s.hi-s.lo)*(0.4+0.2*w.e.rng.Float64())}
		w.devices = append(w.devices, d)
		w.truth = append(w.truth, DeviceTruth{ClientID: c.id, Address: bedAddr(bed, i), Kind: truthKinds[s.topic], Role: "sensor"})
		w.startDevice(d, w.e.start+w.e.jitter(0, 3e9))
	}
	// The bed control unit sets the pump's dose (Table 2's control unit).
	h := w.e.newHost(bedAddr(bed, 9), fmt.Sprintf("bed%d-control", bed), "patientMonitoring")
	cu := w.newClient(h, fmt.Sprintf("bed%d-control", bed), frameTag{class: "patientMonitoring"})
	w.truth = append(w.truth, DeviceTruth{ClientID: cu.id, Address: bedAddr(bed, 9), Kind: "bed control unit", Role: "actuator"})
	w.e.at(w.e.start+w.e.jitter(0, 3e9), func() {
		cu.onConnack = func(rc byte) {
			if rc != 0 {
				return
			}
			cu.subscribe(prefix + "alarm")
			var dose func()
			dose = func() {
				if !cu.connected || w.e.now > w.stop {
					return
				}
				cu.publish(prefix+"dose", []byte(integer(20+w.e.rng.Float64()*60)), 1, false)
				w.e.after(900e9+w.e.jitter(0, 60e9), dose)
			}
			w.e.after(w.e.jitter(60e9, 300e9), dose)
			if w.opts.RetainPHI {
				w.e.after(w.e.jitter(5e9, 15e9), func() {
					cu.publish(prefix+"patient", []byte(fmt.Sprintf("MRN:%07d;name:%s;DOB:%s;bed:%d", 4100000+bed*137,
						[]string{"Jane Roe", "John Doe", "Maria Silva", "Ahmed Khan"}[bed%4], []string{"1948-03-04", "1952-11-23", "1960-07-15", "1971-01-30"}[bed%4], bed)), 1, true)
				})
			}
		}
		cu.onLost = func() { w.reconnect(cu) }
		cu.connect()
	})
}

// addEnvironment adds Table 1's sensors.
func (w *world) addEnvironment() {
	for i, s := range environmentSensors {
		h := w.e.newHost(fmt.Sprintf("10.5.126.%d", 131+i), "env-"+s.topic, "environmentMonitoring")
		c := w.newClient(h, fmt.Sprintf("env-%s", s.topic), frameTag{class: "environmentMonitoring"})
		d := &device{c: c, s: s, topic: s.topic, value: s.lo + (s.hi-s.lo)*(0.3+0.4*w.e.rng.Float64())}
		w.devices = append(w.devices, d)
		w.truth = append(w.truth, DeviceTruth{ClientID: c.id, Address: fmt.Sprintf("10.5.126.%d", 131+i), Kind: "environment sensor", Role: "sensor"})
		w.startDevice(d, w.e.start+w.e.jitter(0, 3e9))
	}
}

// addNurseStation adds the subscriber that follows alarms, pumps and retained
// patient records.
func (w *world) addNurseStation() {
	h := w.e.newHost("10.5.126.90", "nurse-station", "patientMonitoring")
	c := w.newClient(h, "nurse-station", frameTag{class: "patientMonitoring"})
	c.keepalive = 60
	w.truth = append(w.truth, DeviceTruth{ClientID: c.id, Address: "10.5.126.90", Kind: "nurse station", Role: "monitor"})
	w.e.at(w.e.start+w.e.jitter(0, 2e9), func() {
		c.onConnack = func(rc byte) {
			if rc == 0 {
				c.subscribe("+/alarm", "+/pump", "+/patient")
			}
		}
		c.onLost = func() { w.reconnect(c) }
		c.connect()
	})
}

// newClient makes a benign client with the world's credentials policy.
func (w *world) newClient(h *host, id string, tag frameTag) *client {
	if w.opts.Ward != "" {
		id = w.opts.Ward + "-" + id
	}
	return w.client(h, id, tag)
}

// client makes a benign client with exactly this ID.
func (w *world) client(h *host, id string, tag frameTag) *client {
	c := &client{e: w.e, b: w.broker, h: h, id: id, version: mqtt.V311, keepalive: 60, tag: tag, tls: w.pki}
	if !w.opts.Anonymous {
		c.user = id
		c.pass = fmt.Sprintf("%s-%04x", id, w.e.rng.IntN(65536))
		w.broker.users[c.user] = c.pass
	}
	w.clients = append(w.clients, c)
	return c
}

// addClone adds a device that uses another ward's identity id and
// publishes as that ward's bed 1 ECG does.
func (w *world) addClone(i int, id string) {
	s := patientSensors[0]
	h := w.e.newHost(fmt.Sprintf("10.5.126.%d", 200+i), fmt.Sprintf("clone-%d", i), "patientMonitoring")
	c := w.client(h, id, frameTag{class: "patientMonitoring"})
	d := &device{c: c, s: s, topic: "1/" + s.topic, value: s.lo + (s.hi-s.lo)*(0.4+0.2*w.e.rng.Float64())}
	w.devices = append(w.devices, d)
	w.startDevice(d, w.e.start+w.e.jitter(0, 3e9))
}
