-- Keeps a row moving when its head run can no longer finish by itself: its current job was
-- removed (an operator discarded it, or cleaned it from the dashboard), or it never started.
--
-- KEYS[1]: the rows index; ARGV: bull, own, row, now
-- Returns: 'empty', 'running', 'started' (a parked head was started) or 'discarded'.
BULL, OWN = ARGV[1], ARGV[2]
local row, now = ARGV[3], tonumber(ARGV[4])
local head = rcall('LINDEX', OWN .. ':rowq:' .. row, 0)
if not head then
  rcall('ZREM', KEYS[1], row)
  return 'empty'
end
local name, run = string.match(head, '^(.-)/(.*)$')
local state = rcall('HMGET', runKey(run), 'cj', 'done', 'pj')
if state[3] then
  startRun(head, now)
  return 'started'
end
if not state[2] and state[1] and rcall('EXISTS', BULL .. ':' .. name .. ':' .. state[1]) == 1 then
  rcall('ZADD', KEYS[1], now, row)
  return 'running'
end
leaveRow(row, head, now)
if not state[2] then
  -- Given up: nothing will read its record again (a redelivery of its change is a duplicate).
  rcall('DEL', runKey(run))
end
return 'discarded'
