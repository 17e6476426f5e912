package meds

// DefaultReplayCache is how many authenticated SNMPv3 messages a Decoder
// remembers to refuse their replays: 65536 entries (about 5 MiB) cover a
// whole 150 s time window at 436 messages a second; past it see
// replayCache.
const DefaultReplayCache = 65536

// replayKey identifies an authenticated message: the first 16 octets of
// its authentication digest (msgAuthenticationParameters), an HMAC over
// the whole message (msgID, engine boots and time included), which no
// one without the key can make collide.
type replayKey [16]byte

type replayEntry struct {
	key  replayKey
	time int64 // the message's msgAuthoritativeEngineTime
}

// replayCache remembers the authenticated messages a Decoder took for
// as long as the time window would let them through again (RFC 3414
// leaves replays within the 150 s window to the receiver). Memory is
// bounded by max entries in a ring, oldest first. When it is full the
// oldest is forgotten and its engine time becomes the floor: every later
// message whose engine time is not above the floor is refused too, so a
// full cache never lets a replay through (it may refuse a genuine
// message from a sender whose clock lags by more than the cache covers;
// that is counted as a replay).
type replayCache struct {
	max      int
	seen     map[replayKey]struct{}
	ring     []replayEntry
	head, n  int
	floor    int64 // valid when hasFloor
	hasFloor bool
}

func newReplayCache(max int) *replayCache {
	if max <= 0 {
		max = DefaultReplayCache
	}
	return &replayCache{max: max, seen: make(map[replayKey]struct{})}
}

// Why check refused a message.
const (
	replayNone = iota
	replaySeen
	replayTooOld
)

// check refuses a message seen before (replaySeen) or not above the
// floor (replayTooOld), else remembers it; now is this engine's time.
func (c *replayCache) check(digest string, msgTime, now int64) int {
	for c.n > 0 && now-c.ring[c.head].time > TimeWindow {
		c.pop()
	}
	var k replayKey
	copy(k[:], digest)
	if _, ok := c.seen[k]; ok {
		return replaySeen
	}
	if c.hasFloor && msgTime <= c.floor {
		return replayTooOld
	}
	if c.n == c.max {
		e := c.ring[c.head]
		if !c.hasFloor || e.time > c.floor {
			c.floor, c.hasFloor = e.time, true
		}
		c.pop()
	}
	if len(c.ring) < c.max && c.n == len(c.ring) {
		// Grow the ring as needed, oldest first at 0.
		ring := make([]replayEntry, min(c.max, max(64, 2*len(c.ring))))
		for i := range c.n {
			ring[i] = c.ring[(c.head+i)%len(c.ring)]
		}
		c.ring, c.head = ring, 0
	}
	c.ring[(c.head+c.n)%len(c.ring)] = replayEntry{key: k, time: msgTime}
	c.n++
	c.seen[k] = struct{}{}
	return replayNone
}

func (c *replayCache) pop() {
	delete(c.seen, c.ring[c.head].key)
	c.ring[c.head] = replayEntry{}
	c.head = (c.head + 1) % len(c.ring)
	c.n--
}

// len is how many messages are remembered.
func (c *replayCache) len() int { return c.n }
