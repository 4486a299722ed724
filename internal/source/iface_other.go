//go:build !linux

package source

import "errors"

// InterfaceOptions tune a live capture.
type InterfaceOptions struct {
	Promiscuous bool
	SnapLen     int
	RingMB      int
}

// Interface is Linux only (AF_PACKET); elsewhere, pipe tcpdump into watch -.
func Interface(name string, io InterfaceOptions, opts Options) (*Source, error) {
	return nil, errors.New("live capture needs Linux (AF_PACKET); elsewhere: tcpdump -i IF -w - | iomtguard watch -")
}
