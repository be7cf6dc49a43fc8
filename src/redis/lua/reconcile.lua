-- Keeps a row moving when its head run can no longer finish by itself: its current job was
-- removed (an operator discarded it, or cleaned it from the dashboard), it never started, or it
-- already completed (the run's record expired before the job did). The head is judged by its
-- current job's state, not by the job's mere existence.
--
-- KEYS[1]: the rows index (on a cluster, then every key it may touch); ARGV: bull, own, row, now,
-- record ttl ms, and on a cluster the head entry the caller read ('' for none): when the head is
-- another now, the declared keys may be the wrong ones, and the caller reads again.
-- Returns: 'empty', 'running', 'blocked' (its current step failed for good and waits for an
-- operator), 'started' (a parked head was started), 'finished', 'discarded' or 'moved'.
BULL, OWN, RECORD_TTL = ARGV[1], ARGV[2], ARGV[5]
local row, now = ARGV[3], tonumber(ARGV[4])
local head = rcall('LINDEX', OWN .. ':rowq:' .. row, 0)
if ARGV[6] and ARGV[6] ~= (head or '') then return 'moved' end
if not head then
  rcall('ZREM', KEYS[1], row)
  unblock(row)
  return 'empty'
end
local name, run, firstJob = parseEntry(head)
local key = runKey(run)
local state = rcall('HMGET', key, 'cj', 'done', 'pj', 'discarded')
if state[3] then
  if startRun(head, now) == 'started' then return 'started' end
  -- Its workflow was given up: it leaves, and the row's next run starts.
  rcall('LPOP', OWN .. ':rowq:' .. row)
  unblock(row)
  startNext(row, now)
  return 'discarded'
end
-- The current job: the first one until the run advanced past it.
local current = state[1] or firstJob
local base = BULL .. ':' .. name .. ':'
local ended = state[2] or state[4]
local completed = rcall('ZSCORE', base .. 'completed', current)
if not ended and not completed and rcall('EXISTS', base .. current) == 1 then
  rcall('ZADD', KEYS[1], 'XX', now, row)
  if rcall('ZSCORE', base .. 'failed', current) then
    rcall('ZADD', OWN .. ':blocked:failed', 'NX', now, row)
    return 'blocked'
  end
  rcall('ZREM', OWN .. ':blocked:failed', row) -- its step was retried (from the dashboard, say)
  return 'running'
end
leaveRow(row, name .. '/' .. run .. '/', now)
if ended or completed then return 'finished' end
-- Given up, and marked so: a retry of one of its jobs from the dashboard must not revive it.
markDiscarded(run, now)
return 'discarded'
