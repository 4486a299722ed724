package gateway

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iomtguard/iomtguard/internal/policy"
	"github.com/iomtguard/iomtguard/seal"
)

// The gateway's decisions are pure functions of the policy, the limits and
// an identity's rights: the same function decides a PUBLISH, a will at
// CONNECT and a will at a reload, and one function decides a subscription
// and every delivery on it. Nothing is remembered between the two, so that
// no sequence of packets (a filter sent twice, a shared subscription, a
// session taken over) can turn a refusal into a grant.

// rights is what one identity may do, with {identity} substituted.
type rights struct {
	identity string
	pub, sub []string
	entries  []string // the policy's devices entries that gave them
	cfg      *config  // the configuration they were resolved in
}

// rightsOf resolves identity's rights in cfg's policy; known is false when
// no devices entry matches it.
func rightsOf(cfg *config, identity string) (*rights, bool) {
	pub, sub, known := cfg.pol.Rights(identity)
	return &rights{identity: identity, pub: pub, sub: sub, entries: cfg.pol.Entries(identity), cfg: cfg}, known
}

// rightsIn returns c's rights under cfg, the configuration in force. A
// reload stores its configuration first and then walks the open sessions
// (apply) to update their rights or cut them off; a decision taken in
// between from the session's stored rights would still grant what the
// reload took away (a delivery on a subscription whose right was just
// removed, to a certificate just revoked). So rights resolved in an older
// configuration are resolved again here, failing closed: a session that
// no longer stands (standing) gets no rights at all until apply cuts it
// off.
func (c *client) rightsIn(cfg *config) *rights {
	r := c.rights.Load()
	if r.cfg == cfg {
		return r
	}
	n, v := cfg.standing(c.identity, c.serial, c.pwHash)
	if !v.ok() {
		n = &rights{identity: c.identity, cfg: cfg}
	}
	c.rights.CompareAndSwap(r, n)
	return n
}

// standing decides whether a session may still act at all under cfg: its
// certificate not revoked, its identity in the policy, its password the
// one it authenticated with (pwHash; "" without a password file). It
// returns the identity's rights with the verdict. (apply cuts sessions
// off for the same three reasons.)
func (cfg *config) standing(identity string, serial *big.Int, pwHash string) (*rights, verdict) {
	r, known := rightsOf(cfg, identity)
	switch h, ok := cfg.pw[identity]; {
	case serial != nil && cfg.revoked[serial.Text(16)]:
		return r, verdict{packets.ErrNotAuthorized, "client certificate revoked", "crl", "revoked"}
	case !known:
		return r, verdict{packets.ErrNotAuthorized, "identity no longer in the policy", "devices", "not_in_policy"}
	case cfg.pw != nil && (!ok || h != pwHash):
		return r, verdict{packets.ErrNotAuthorized, "password changed or removed", "passwords", "password"}
	}
	return r, allow
}

// rule names the devices entries behind r for the audit log.
func (r *rights) rule(what string) string {
	if len(r.entries) == 0 {
		return "devices: no entry for " + r.identity
	}
	return fmt.Sprintf("devices[%s].%s", strings.Join(r.entries, ","), what)
}

// mayPublish reports whether topic is inside the publish rights.
func (r *rights) mayPublish(topic string) bool {
	for _, f := range r.pub {
		if policy.TopicMatch(f, topic) {
			return true
		}
	}
	return false
}

// mayReceive reports whether a message on topic may be delivered: a topic
// inside the subscribe rights. Topics starting with '$' match only filters
// that name them [MQTT-4.7.2-1].
func (r *rights) mayReceive(topic string) bool {
	for _, f := range r.sub {
		if policy.TopicMatch(f, topic) {
			return true
		}
	}
	return false
}

// verdict is a decision with the MQTT 5 reason code to send and the words
// and rule for the audit log.
type verdict struct {
	code   packets.Code // CodeSuccess when allowed
	reason string
	rule   string // what was checked: limits.max_topic_length, devices[x].publish, sealed_topics, ...
	metric string // the Prometheus reason label
}

func (v verdict) ok() bool { return v.code == packets.CodeSuccess }

var allow = verdict{code: packets.CodeSuccess}

// checkTopicName applies the limits and the syntax rules to a topic name
// (PUBLISH or will).
func checkTopicName(topic string, lim *policy.Limits) verdict {
	switch {
	case len(topic) > lim.MaxTopicLength:
		return verdict{packets.ErrTopicNameInvalid, fmt.Sprintf("topic name of %d bytes over the limit of %d", len(topic), lim.MaxTopicLength), "limits.max_topic_length", "topic_length"}
	case strings.Count(topic, "/")+1 > lim.MaxTopicLevels:
		return verdict{packets.ErrTopicNameInvalid, fmt.Sprintf("topic name of %d levels over the limit of %d", strings.Count(topic, "/")+1, lim.MaxTopicLevels), "limits.max_topic_levels", "topic_length"}
	case topic == "":
		return verdict{packets.ErrTopicNameInvalid, "empty topic name (or an unknown topic alias) [MQTT-4.7.3-1]", "mqtt", "topic_invalid"}
	case strings.ContainsAny(topic, "+#\x00"):
		return verdict{packets.ErrTopicNameInvalid, "wildcard or NUL in a topic name [MQTT-3.3.2-2] [MQTT-4.7.3-2]", "mqtt", "topic_invalid"}
	case strings.HasPrefix(topic, "$"):
		return verdict{packets.ErrNotAuthorized, "topics starting with '$' belong to the broker [MQTT-4.7.2-1]", "mqtt", "reserved_topic"}
	}
	return allow
}

// decidePublish decides a message that identity r publishes (or sets as
// its will): topic syntax and limits, publish rights, sealed topics and
// retained messages. Rate and the retained-message count are the caller's,
// since they change state.
func decidePublish(pol *policy.Policy, lim *policy.Limits, r *rights, topic string, retain bool, payload []byte) verdict {
	if v := checkTopicName(topic, lim); !v.ok() {
		return v
	}
	if !r.mayPublish(topic) {
		return verdict{packets.ErrNotAuthorized, "topic outside the identity's publish rights", r.rule("publish"), "not_authorized"}
	}
	if pol.Sealed(topic) {
		hd, err := seal.Inspect(payload)
		switch {
		case err != nil:
			return verdict{packets.ErrPayloadFormatInvalid, "sealed topic: the payload is not an iomtguard seal envelope (" + err.Error() + ")", "sealed_topics", "not_sealed"}
		case !hd.ForTopic(topic):
			return verdict{packets.ErrPayloadFormatInvalid, "sealed topic: the envelope was sealed for another topic", "sealed_topics", "not_sealed"}
		}
	}
	if retain && len(payload) > 0 && pol.RetainRefused(topic) {
		return verdict{packets.ErrRetainNotSupported, "retained messages are refused on this topic", "no_retain", "retain"}
	}
	return allow
}

// decideSubscribe decides one topic filter of a SUBSCRIBE by identity r.
func decideSubscribe(lim *policy.Limits, r *rights, filter string) verdict {
	switch {
	case len(filter) > lim.MaxTopicLength:
		return verdict{packets.ErrTopicFilterInvalid, fmt.Sprintf("topic filter of %d bytes over the limit of %d", len(filter), lim.MaxTopicLength), "limits.max_topic_length", "topic_length"}
	case strings.Count(filter, "/")+1 > lim.MaxTopicLevels+2: // "$share/group/" adds two levels
		return verdict{packets.ErrTopicFilterInvalid, fmt.Sprintf("topic filter of %d levels over the limit of %d", strings.Count(filter, "/")+1, lim.MaxTopicLevels), "limits.max_topic_levels", "topic_length"}
	case filter == "" || strings.ContainsRune(filter, 0):
		return verdict{packets.ErrTopicFilterInvalid, "empty topic filter or NUL in it [MQTT-4.7.3-1]", "mqtt", "filter_invalid"}
	}
	_, inner, shared, err := policy.SplitShared(filter)
	if err != nil {
		return verdict{packets.ErrTopicFilterInvalid, err.Error() + " [MQTT-4.8.2]", "mqtt", "filter_invalid"}
	}
	if perr := policy.CheckFilter(inner); perr != nil {
		return verdict{packets.ErrTopicFilterInvalid, perr.Error(), "mqtt", "filter_invalid"}
	}
	if policy.SubscribeAllowed(r.sub, filter) {
		return allow
	}
	what := "filter outside the identity's subscribe rights"
	switch {
	case policy.CatchAll(inner):
		what = "'#' and '$SYS' subscriptions are refused unless the policy names them"
	case shared:
		what = "shared subscription to a filter outside the identity's subscribe rights (the filter inside $share/GROUP/ is what is authorised)"
	}
	return verdict{packets.ErrNotAuthorized, what, r.rule("subscribe"), "not_authorized"}
}

// mayRead is the check mochi asks for both a filter being subscribed and
// every message delivered: a filter with wildcards (or a shared one) is a
// subscription and is decided as one; anything else is a topic, delivered
// only inside the subscribe rights. Both answers come from the rights
// alone.
func mayRead(lim *policy.Limits, r *rights, s string) bool {
	if strings.ContainsAny(s, "+#") || len(s) >= 6 && strings.EqualFold(s[:6], "$share") {
		return decideSubscribe(lim, r, s).ok()
	}
	return r.mayReceive(s)
}
