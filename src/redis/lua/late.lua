-- Decides, once for good, whether changes are late for their primary-key row, in that row's shard:
-- for changes whose runs live in other shards (rows of a workflow's own `key`), which cannot see
-- the primary key's newest position. The verdict is kept in the change's dedup hash of this shard
-- (field `L`), so that a redelivery gets the same one, whatever arrived meanwhile.
--
-- KEYS[1]: any key of the shard (on a cluster, then every key it touches)
-- ARGV[1]: JSON { own, ttl, items = { { id = change id, row = primary-key row, version = { lsn, idx } } } }
-- Returns one verdict an item: 1 late, 0 not.
local plan = cjson.decode(ARGV[1])
OWN = plan.own
local verdicts = {}
for i, item in ipairs(plan.items) do
  local seen = OWN .. ':s:' .. item.id
  local decided = rcall('HGET', seen, 'L')
  if decided then
    verdicts[i] = tonumber(decided)
  else
    verdicts[i] = isLateAt(item.row, item.version, plan.ttl) and 1 or 0
    rcall('HSET', seen, 'L', verdicts[i])
    if rcall('PTTL', seen) < 0 then rcall('PEXPIRE', seen, plan.ttl) end
  end
end
return verdicts
