package gateway

import mochi "github.com/mochi-mqtt/server/v2"

// AddBrokerHook adds a hook to the gateway's broker after its own, so a
// test can widen a window between two of the broker's steps.
func (g *Gateway) AddBrokerHook(h mochi.Hook) error { return g.srv.AddHook(h, nil) }
