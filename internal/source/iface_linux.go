//go:build linux

package source

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/net/bpf"

	"github.com/iomtguard/iomtguard/internal/capture"
)

// InterfaceOptions tune a live capture.
type InterfaceOptions struct {
	Promiscuous bool
	// SnapLen is the most bytes kept of a frame (default 65535).
	SnapLen int
	// RingMB is the memory-mapped ring's size (default 64 MB): what the
	// kernel can hold while the pipeline is busy, before it drops.
	RingMB int
}

// Interface captures on a network interface with AF_PACKET and a
// memory-mapped TPACKET_V3 ring: pure Go, no libpcap. It needs
// CAP_NET_RAW (root). On a loopback interface each packet is seen once
// (the kernel shows it leaving and arriving; the copy leaving is dropped
// in the kernel, as libpcap does).
func Interface(name string, io InterfaceOptions, opts Options) (*Source, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	if io.SnapLen <= 0 {
		io.SnapLen = 65535
	}
	if io.RingMB <= 0 {
		io.RingMB = 64
	}
	const block = 1 << 20
	frame := 1 << 16
	tp, err := afpacket.NewTPacket(afpacket.OptInterface(name), afpacket.OptFrameSize(frame), afpacket.OptBlockSize(block),
		afpacket.OptNumBlocks(io.RingMB), afpacket.OptPollTimeout(100*time.Millisecond), afpacket.TPacketVersion3)
	if err != nil {
		return nil, fmt.Errorf("interface %s: AF_PACKET: %w (capturing needs root or CAP_NET_RAW)", name, err)
	}
	if ifi.Flags&net.FlagLoopback != 0 {
		// Drop the copy of each packet leaving the loopback interface.
		prog, err := bpf.Assemble([]bpf.Instruction{
			bpf.LoadExtension{Num: bpf.ExtType},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 1}, // PACKET_OUTGOING
			bpf.RetConstant{Val: uint32(io.SnapLen)},
			bpf.RetConstant{Val: 0},
		})
		if err == nil {
			err = tp.SetBPF(prog)
		}
		if err != nil {
			tp.Close()
			return nil, fmt.Errorf("interface %s: loopback filter: %w", name, err)
		}
	}
	if io.Promiscuous {
		if err := tp.SetPromiscuous(true); err != nil {
			tp.Close()
			return nil, fmt.Errorf("interface %s: promiscuous mode: %w", name, err)
		}
	}
	stats := &Stats{}
	closed := make(chan struct{})
	s := newSource(name, "interface", opts, stats, true, nil, func(p *producer) error {
		defer tp.Close()
		defer close(closed)
		var pkt capture.Packet
		lastStats := time.Now()
		for {
			data, ci, err := tp.ZeroCopyReadPacketData()
			if time.Since(lastStats) > 500*time.Millisecond {
				if _, v3, err := tp.SocketStats(); err == nil {
					stats.KernelDrops.Store(int64(v3.Drops()))
				}
				lastStats = time.Now()
			}
			if err != nil {
				if errors.Is(err, afpacket.ErrTimeout) {
					if p.closed() {
						return nil
					}
					continue
				}
				if p.closed() {
					return nil
				}
				return fmt.Errorf("interface %s: %w", name, err)
			}
			if len(data) > io.SnapLen {
				data = data[:io.SnapLen]
			}
			pkt = capture.Packet{Timestamp: ci.Timestamp.UnixNano(), CapLen: len(data), OrigLen: ci.Length, LinkType: capture.LinkEthernet, Data: data}
			if !p.add(&pkt) && p.closed() {
				return nil
			}
		}
	})
	return s, nil
}
