package dataset

import (
	"bytes"
	"os"
	"testing"
)

func FuzzReader(f *testing.F) {
	if b, err := os.ReadFile(excerpt); err == nil {
		f.Add(b[:min(len(b), 3000)])
	}
	f.Add([]byte("frame.time_relative,ip.src,mqtt.msg,tcp.payload\n1.5,10.0.0.1,0a:0b,\"x,y\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := 0; i < 10000; i++ {
			var r Row
			if err := rd.Next(&r); err != nil {
				if _, ok := err.(*RowError); ok {
					continue
				}
				return
			}
		}
	})
}
