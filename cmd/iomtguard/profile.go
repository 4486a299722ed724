package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfiles writes Go profiles of the whole process when asked by the
// environment, for the engineers who tune it (profile before optimising):
//
//	IOMTGUARD_CPUPROFILE=cpu.prof IOMTGUARD_MEMPROFILE=heap.prof iomtguard analyze big.pcap
//	go tool pprof -top cpu.prof
//
// The heap profile is taken at exit, after a collection. The returned
// function stops and writes them.
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
		stops = append(stops, func() {
			f, err := os.Create(p)
			if err != nil {
				fmt.Fprintln(os.Stderr, "iomtguard: IOMTGUARD_MEMPROFILE:", err)
				return
			}
			defer f.Close()
			pprof.Lookup("allocs").WriteTo(f, 0)
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
