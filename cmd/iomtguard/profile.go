package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// startProfiles writes Go profiles of the whole process when asked by the
// environment, for the engineers who tune it (profile before optimising):
//
//	IOMTGUARD_CPUPROFILE=cpu.prof IOMTGUARD_MEMPROFILE=heap.prof iomtguard analyze big.pcap
//	go tool pprof -top cpu.prof
//	go tool pprof -sample_index=inuse_space -top heap.prof
//
// The heap profile is the one of the heap at its largest: the live heap is
// read four times a second and the profile written again whenever it has
// grown by a twentieth since the last one (a profile taken at exit shows
// what the report holds, not the tables that made the peak RSS). The
// returned function stops and writes them.
func startProfiles() func() {
	var stops []func()
	if p := os.Getenv("IOMTGUARD_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		} else {
			fmt.Fprintln(os.Stderr, "iomtguard: IOMTGUARD_CPUPROFILE:", err)
		}
	}
	if p := os.Getenv("IOMTGUARD_MEMPROFILE"); p != "" {
		runtime.MemProfileRate = 64 << 10
		write := func() {
			f, err := os.Create(p)
			if err != nil {
				fmt.Fprintln(os.Stderr, "iomtguard: IOMTGUARD_MEMPROFILE:", err)
				return
			}
			defer f.Close()
			pprof.Lookup("heap").WriteTo(f, 0)
		}
		done, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
			var top uint64
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					if top == 0 {
						write()
					}
					return
				case <-t.C:
					metrics.Read(s)
					if v := s[0].Value.Uint64(); v > top+top/20 {
						top = v
						write()
					}
				}
			}
		}()
		stops = append(stops, func() { close(done); <-stopped })
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
