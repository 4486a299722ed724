package capture

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
)

func fuzzRead(data []byte) {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return
	}
	var p Packet
	for i := 0; i < 100000; i++ {
		if err := r.Next(&p); err != nil {
			return
		}
		if len(p.Data) != p.CapLen || p.CapLen > MaxPacketLen {
			panic("inconsistent packet")
		}
	}
}

func FuzzPcap(f *testing.F) {
	f.Add(pcapFile(binary.LittleEndian, pcapMagicMicro, []byte{1, 2, 3}))
	f.Add(pcapFile(binary.BigEndian, pcapMagicNano, []byte{1}, []byte{2, 3}))
	f.Add(pcapFile(binary.LittleEndian, pcapMagicKuz, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}))
	for _, name := range []string{"ack-ahead.pcap", "raw-ip.pcap"} {
		if b, err := os.ReadFile("../../testdata/captures/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(data) })
}

func FuzzPcapng(f *testing.F) {
	for _, name := range []string{"multi-section.pcapng", "sll2.pcapng"} {
		if b, err := os.ReadFile("../../testdata/captures/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= 4 {
			data[0], data[1], data[2], data[3] = 0x0a, 0x0d, 0x0d, 0x0a
		}
		fuzzRead(data)
	})
}
