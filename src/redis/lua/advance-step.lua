-- Records that step `index` of a run completed and releases what comes next, atomically: the
-- run's next step, or, when the run is finished and ordered, the next run of its row. A step
-- re-run after this (stall recovery after a crash) finds the record, or the run's end marked in
-- its change's dedup hash, and does nothing. Used by advance.lua (on its own) and complete.lua
-- (together with BullMQ's completion of the step's job).
--
-- key: the run's record
-- A: bull, own, index, result JSON, record ttl ms, now, run, queue, row ('' if unordered), the
--    change's dedup hash, then for the next step (absent when this was the last): job id, name,
--    data, opts JSON.
-- Returns 1, or 0 when the step was recorded before (or its run ended) and nothing was written.
local function advanceStep(key, A)
  BULL, OWN, RECORD_TTL = A[1], A[2], A[5]
  local field = 'r' .. A[3]
  local name, seen = A[8], A[10]
  local recorded = rcall('HMGET', key, field, 'discarded')
  if recorded[1] or recorded[2] then return 0 end
  if rcall('HEXISTS', seen, name) == 1 then return 0 end
  local now = tonumber(A[6])
  local row = A[9]

  if A[11] then
    -- What comes next goes in before the result is recorded: should it fail, the step's retry
    -- repeats both (re-adding an existing job id is a no-op) rather than finding a record with
    -- nothing behind it. The record lives as long as the run, however long a failed step waits
    -- for an operator: its results feed the later steps.
    addJob(queue(name), A[11], A[12], A[13], A[14], now)
    if row ~= '' then
      unblock(row) -- a step retried by an operator succeeded: the run, and so its row, moves again
      rcall('HSET', key, 'cj', A[11], field, A[4])
    else
      rcall('HSET', key, field, A[4])
    end
    return 1
  end

  -- The run is done: its record (results, late flag) goes, and only a marker stays, a field of its
  -- change's dedup hash, for as long as the change is deduplicated: a late redelivery of the change
  -- does not start the run again, and a re-run of this step does not execute it again.
  if row ~= '' then leaveRow(row, name .. '/' .. A[7] .. '/', now) end
  rcall('DEL', key)
  markDone(seen, name)
  return 1
end
