-- Records that step `index` of a run completed and releases what comes next, atomically: the
-- run's next step, or, when the run is finished and ordered, the next run of its row. A step
-- re-run after this (stall recovery after a crash) finds the record and does nothing.
--
-- KEYS[1]: the run's record
-- ARGV: bull, own, index, result JSON, record ttl ms, now, run, queue, row ('' if unordered),
--       then for the next step (absent when this was the last): job id, name, data, opts JSON.
BULL, OWN, RECORD_TTL = ARGV[1], ARGV[2], ARGV[5]
local key = KEYS[1]
local field = 'r' .. ARGV[3]
if rcall('HEXISTS', key, field) == 1 or rcall('HEXISTS', key, 'discarded') == 1 then return 0 end
local now = tonumber(ARGV[6])
local row = ARGV[9]

-- What comes next goes in before the result is recorded: should it fail, the step's retry
-- repeats both (re-adding an existing job id is a no-op) rather than finding a record with
-- nothing behind it.
if ARGV[10] then
  addJob(queue(ARGV[8]), ARGV[10], ARGV[11], ARGV[12], ARGV[13], now)
  if row ~= '' then
    rcall('HSET', key, 'cj', ARGV[10])
    unblock(row) -- a step retried by an operator succeeded: the run, and so its row, moves again
  end
else
  if row ~= '' then leaveRow(row, ARGV[8] .. '/' .. ARGV[7] .. '/', now) end
  rcall('HSET', key, 'done', now)
end
rcall('HSET', key, field, ARGV[4])
-- The record lives as long as the run, however long a failed step waits for an operator (its
-- results feed the later steps), then for the dedup horizon, so that a late redelivery of its
-- change does not start it again.
if not ARGV[10] then rcall('PEXPIRE', key, ARGV[5]) end
return 1
