-- Keeps a row moving when its head run can no longer finish by itself: its current job was
-- removed (an operator discarded it, or cleaned it from the dashboard), or it never started.
--
-- KEYS[1]: the rows index; ARGV: bull, own, row, now, record ttl ms
-- Returns: 'empty', 'running', 'started' (a parked head was started) or 'discarded'.
BULL, OWN = ARGV[1], ARGV[2]
local row, now = ARGV[3], tonumber(ARGV[4])
local head = rcall('LINDEX', OWN .. ':rowq:' .. row, 0)
if not head then
  rcall('ZREM', KEYS[1], row)
  return 'empty'
end
local name, run, firstJob = parseEntry(head)
local state = rcall('HMGET', runKey(run), 'cj', 'done', 'pj')
if state[3] then
  startRun(head, now)
  return 'started'
end
-- The current job: the first one until the run advanced past it.
local current = state[1] or firstJob
if not state[2] and rcall('EXISTS', BULL .. ':' .. name .. ':' .. current) == 1 then
  rcall('ZADD', KEYS[1], now, row)
  return 'running'
end
leaveRow(row, name .. '/' .. run .. '/', now)
if not state[2] then
  -- Given up, and marked so: a retry of one of its jobs from the dashboard must not revive it.
  local key = runKey(run)
  rcall('HDEL', key, 'cj')
  rcall('HSET', key, 'discarded', now)
  rcall('PEXPIRE', key, ARGV[5])
end
return 'discarded'
