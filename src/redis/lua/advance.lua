-- Records that step `index` of a run completed and releases the run's next step, atomically.
-- A step re-run after this (stall recovery after a crash) finds the record and does nothing.
--
-- KEYS[1]: the run's hash; KEYS[2..10]: the workflow queue's add-job keys.
-- ARGV: index, result JSON, run retention ms, now, queue prefix,
--       then for the next step (absent when this was the last): job id, name, data, opts JSON.
local field = 'r' .. ARGV[1]
if rcall('HEXISTS', KEYS[1], field) == 1 then return 0 end
-- The next job goes in before the result is recorded: should the add fail, the step's retry
-- repeats both (re-adding an existing job id is a no-op) instead of finding a record with no
-- next step behind it.
if ARGV[6] then
  local qk = queueKeys(2)
  local refused = checkQueueKeys(qk)
  if refused then return refused end
  addJob(qk, ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[4]))
else
  rcall('HSET', KEYS[1], 'done', ARGV[4])
end
rcall('HSET', KEYS[1], field, ARGV[2])
rcall('PEXPIRE', KEYS[1], ARGV[3])
return 1
