package queue

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/bbolt"
)

// RewriteFunc looks at one stored message and returns its new body and true to change
// it (a nil body drops the message), or false to leave it.
type RewriteFunc func(m Message) (body []byte, changed bool)

// Rewriter is a Queue whose stored messages can be changed or dropped, e.g. to remove
// an erased person from jobs still waiting. Messages a worker holds may be left alone
// (Redis) or rewritten under it (Bolt): the worker's own checks must cope with them.
type Rewriter interface {
	// Rewrite applies fn to every message waiting (ready or delayed) and to the dead
	// letters, and returns the bodies it replaced or dropped and how many changed.
	Rewrite(ctx context.Context, fn RewriteFunc) (old [][]byte, n int, err error)
}

var (
	_ Rewriter = (*Bolt)(nil)
	_ Rewriter = (*Redis)(nil)
)

// Rewrite changes messages in place, in one transaction. Reserved messages are
// rewritten too (their worker holds the old copy and settles by key).
func (b *Bolt) Rewrite(ctx context.Context, fn RewriteFunc) ([][]byte, int, error) {
	var old [][]byte
	n := 0
	err := b.opts.Commit(ctx, func(tx *bbolt.Tx) error {
		old, n = old[:0], 0
		for _, name := range [][]byte{bucketReady, bucketDead} {
			bk := tx.Bucket(name)
			type change struct{ key, val []byte }
			var changes []change
			err := bk.ForEach(func(k, v []byte) error {
				m, err := decodeMessage(v)
				if err != nil {
					return nil // not ours to judge: left as it is
				}
				body, changed := fn(m)
				if !changed {
					return nil
				}
				old = append(old, bytes.Clone(m.Body))
				var val []byte
				if body != nil {
					m.Body = body
					val = encodeMessage(m)
				}
				changes = append(changes, change{bytes.Clone(k), val})
				return nil
			})
			if err != nil {
				return err
			}
			for _, c := range changes {
				var err error
				if c.val == nil {
					err = bk.Delete(c.key)
				} else {
					err = bk.Put(c.key, c.val)
				}
				if err != nil {
					return err
				}
				n++
			}
			if string(name) == string(bucketReady) {
				var gone [lanes]int64
				for _, c := range changes {
					if c.val == nil {
						gone[readyKey(c.key).lane()]++
					}
				}
				tx.OnCommit(func() {
					for lane := range lanes {
						b.ready[lane].Add(-gone[lane])
					}
				})
			}
		}
		return nil
	})
	return old, n, err
}

// luaRewriteOne replaces or drops one message if it is still waiting. ARGV: where
// ("s" a lane stream, "d" a lane's delayed hash, "x" the dead letters), lane, id (entry
// id or schedule member), drop ("1" or "0"), body. A stream entry that has a lease is
// in a worker's hands and is left alone. Returns 1 when changed.
const luaRewriteOne = luaPrelude + `
local where, lane, id, drop, body = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1', ARGV[5]
local function replaced(f)
  for i = 1, #f, 2 do if f[i] == 'body' then f[i + 1] = body end end
  return f
end
if where == 'd' then
  local packed = redis.call('HGET', key(lane, DELAYED), id)
  if not packed then return 0 end
  if drop then
    redis.call('HDEL', key(lane, DELAYED), id)
    redis.call('ZREM', key(lane, SCHEDULE), id)
  else
    redis.call('HSET', key(lane, DELAYED), id, cmsgpack.pack(replaced(cmsgpack.unpack(packed))))
  end
  return 1
end
local stream = DEAD
if where == 's' then
  stream = key(lane, STREAM)
  if redis.call('HEXISTS', key(lane, LEASES), id) == 1 then return 0 end
end
local e = redis.call('XRANGE', stream, id, id)
if #e == 0 then return 0 end
redis.call('XDEL', stream, id)
if not drop then redis.call('XADD', stream, '*', unpack(replaced(e[1][2]))) end
return 1
`

// luaDelayed lists a lane's delayed messages. ARGV: lane. Returns member, fields pairs.
const luaDelayed = luaPrelude + `
local lane = tonumber(ARGV[1])
local all = redis.call('HGETALL', key(lane, DELAYED))
local out = {}
for i = 1, #all, 2 do
  out[#out + 1] = all[i]
  out[#out + 1] = cmsgpack.unpack(all[i + 1])
end
return out
`

// Rewrite changes waiting messages: entries of the lane streams no worker holds,
// delayed messages and dead letters. A changed stream entry moves to the end of its
// stream (entries cannot change in place).
func (r *Redis) Rewrite(ctx context.Context, fn RewriteFunc) ([][]byte, int, error) {
	var old [][]byte
	n := 0
	apply := func(where string, lane int, id string, m Message) error {
		body, changed := fn(m)
		if !changed {
			return nil
		}
		drop := "0"
		if body == nil {
			drop = "1"
		}
		res, err := r.rewriteOne.Run(ctx, r.client, r.keys, where, lane, id, drop, body).Int()
		if err != nil {
			return fmt.Errorf("queue: rewrite: %w", err)
		}
		if res == 1 {
			old = append(old, m.Body)
			n++
		}
		return nil
	}
	scan := func(where string, lane int, stream string) error {
		start := "-"
		for {
			entries, err := r.client.XRangeN(ctx, stream, start, "+", 500).Result()
			if err != nil {
				return fmt.Errorf("queue: rewrite: %w", err)
			}
			for _, e := range entries {
				m, err := redisMessage(e.Values)
				if err == nil {
					if err := apply(where, lane, e.ID, m); err != nil {
						return err
					}
				}
			}
			if len(entries) < 500 {
				return nil
			}
			start = "(" + entries[len(entries)-1].ID
		}
	}
	for lane := range lanes {
		if err := scan("s", lane, r.stream(lane)); err != nil {
			return old, n, err
		}
		raw, err := r.delayed.Run(ctx, r.client, r.keys, lane).Slice()
		if err != nil {
			return old, n, fmt.Errorf("queue: rewrite: %w", err)
		}
		for i := 0; i+1 < len(raw); i += 2 {
			member, _ := raw[i].(string)
			flat, _ := raw[i+1].([]any)
			fields := map[string]any{}
			for j := 0; j+1 < len(flat); j += 2 {
				k, _ := flat[j].(string)
				fields[k] = flat[j+1]
			}
			if m, err := redisMessage(fields); err == nil {
				if err := apply("d", lane, member, m); err != nil {
					return old, n, err
				}
			}
		}
	}
	return old, n, scan("x", 0, r.deadStream())
}
