-- Accepts batches: a change is recorded as seen together with its runs, or not at all, and a
-- change already seen (within the dedup horizon) adds nothing. Ordered runs join their row's
-- queue and start only when they reach its head.
--
-- KEYS[1]: any key of the keyspace (routes the call to the right Cluster node)
-- ARGV[1]: call JSON
--   bull, own: key prefixes; queues: { name, ... } every queue the call adds to; opts: { optsJson, ... }
--   segments: { segment, ... }: parts of batches (of several requests, written together), each
--     taken as if it were a call of its own, in order
--   segment: now: ms (string); ttl: dedup horizon in ms (string); quarantineLimit: most messages the
--     quarantine may hold; journal: { minId, maxLen, keep (ms), rowMax } when the change journal is on;
--     changes: { { id = change id, version = { lsn, idx } (canonical decimal text; absent on
--              reads), late = 0 or 1 when already decided (see late.lua), jobs = { job, ... },
--              journal = { row, bytes, workflows (every workflow the change started, when its runs
--              are split over shards) } to journal it when accepted, again = 1 for a replay without
--              --force, forced = 1 for a forced replay } },
--              in commit order
--     quarantine: { job, ... }
--     positions: { { row = primary-key row, version = { lsn, idx } }, ... } of unmatched changes
--   job: { queue, id, name, data = ARGV index of its data, opts = index in opts, run, row (the
--          row whose queue it joins), pkRow (its primary-key row, for late detection; absent
--          for tables without a primary key), ordered, skipLate }
-- Returns, for each segment, the length of its result and then the result: one flag a change
--   (1 accepted, 0 duplicate), then jobs added, late runs, skipped runs, runs dropped because
--   their workflow was given up (discard-workflow); or { -1, held } when the quarantine cannot
--   take the segment's new messages: nothing of the segment written.
local call = cjson.decode(ARGV[1])
BULL, OWN = call.bull, call.own
local opts = call.opts
for _, name in ipairs(call.queues) do queue(name) end

-- The segment being written, and what it did.
local plan, now
local added, late, skipped, dropped
-- The journal's age bound, as of the last segment that journalled a change: trimmed once a call.
local trimTo

-- Looked up once a call: no script runs while this one does.
local discarded = {}
local function givenUp(name)
  local verdict = discarded[name]
  if verdict == nil then
    verdict = isDiscardedQueue(name)
    discarded[name] = verdict
  end
  return verdict
end

local function add(job, data)
  addJob(queue(job.queue), job.id, job.name, data or ARGV[job.data], opts[job.opts], now)
  added = added + 1
end

-- A late run's first job says so in its data (`"late":true` after the change), where its step
-- finds it without reading the run's record.
local function lateData(data)
  return string.sub(data, 1, -2) .. ',"late":true}'
end

local function isLate(row, version)
  return isLateAt(row, version, plan.ttl)
end

-- Joining is idempotent: a run already in its row, running, finished or discarded is not added
-- again, even when its change's dedup mark expired meanwhile (a redelivery days later). Its
-- record then outlives the mark: it expires a dedup horizon after the run finished.
-- A waiting run has a record (its parked job); only a row's head can be running without one; a
-- finished run is marked in its change's dedup hash (`marked`: the hash held more than the
-- dedup field the script just set).
local function known(job, seen, marked)
  if rcall('EXISTS', runKey(job.run)) == 1 or (marked and rcall('HEXISTS', seen, job.queue) == 1) then return true end
  return job.ordered and rcall('LINDEX', OWN .. ':rowq:' .. job.row, 0) == rowEntry(job.queue, job.run, job.id)
end

local function enter(job, lateRun)
  local key = runKey(job.run)
  local data = ARGV[job.data]
  if lateRun then
    rcall('HSET', key, 'late', 1)
    data = lateData(data)
  end
  if not job.ordered then return add(job, data) end
  -- An ordered run's record has no expiry until the run finishes: a row may stay blocked long.
  if rcall('RPUSH', OWN .. ':rowq:' .. job.row, rowEntry(job.queue, job.run, job.id)) == 1 then
    add(job, data)
  else
    rcall('HSET', key, 'pj', job.id, 'pn', job.name, 'pd', data, 'po', opts[job.opts])
    rcall('ZADD', OWN .. ':rows', 'NX', now, job.row)
  end
end

-- The change journal (src/journal): an accepted change's entry in the shard's stream (trimmed by
-- length here, by age once a call that journalled anything), and the entry's id in its row's index (for `trace`). The
-- change is the tail of its first job's data, `bytes` long: it is not sent twice.
local function journal(change)
  local data = ARGV[change.jobs[1].data]
  local names = change.journal.workflows
  if not names then
    names = {}
    for i, job in ipairs(change.jobs) do names[i] = job.queue end
  end
  local id = rcall('XADD', OWN .. ':journal', 'MAXLEN', '~', plan.journal.maxLen, '*', 'i', change.id,
    'w', table.concat(names, ','), 'c', string.sub(data, #data - change.journal.bytes, #data - 1))
  local index = OWN .. ':jr:' .. change.journal.row
  if rcall('RPUSH', index, id) > plan.journal.rowMax then rcall('LTRIM', index, -plan.journal.rowMax, -1) end
  rcall('PEXPIRE', index, plan.journal.keep)
  trimTo = plan.journal.minId
end

-- A new change; or a replay without --force (`again`) of one whose outcome is still known: it
-- starts only the runs the change never had. A forced replay's change is new to its generation,
-- unless the generation is run again (interrupted, or with other workflows selected): then, as
-- `again`, only the runs it does not have start.
local function admit(change, seen)
  if change.again then return rcall('EXISTS', seen) == 1 end
  return rcall('HSETNX', seen, '_', 1) == 1 or change.forced == 1
end

-- A change's dedup hash: field `_` while it is deduplicated, and a field per finished run (see
-- markDone). Marked first: the type checks above leave nothing that could fail between a change's
-- mark and its runs (Redis lets a script that has begun writing finish even past maxmemory).
local function writeSegment()
  -- Bounded without losing anything: past the limit the batch is refused whole (Sequin keeps it).
  if #plan.quarantine > 0 then
    local held = quarantineSize()
    local adding = 0
    for _, job in ipairs(plan.quarantine) do
      if rcall('EXISTS', BULL .. ':quarantine:' .. job.id) == 0 then adding = adding + 1 end
    end
    if adding > 0 and held + adding > plan.quarantineLimit then return { -1, held } end
  end

  added, late, skipped, dropped = 0, 0, 0, 0
  local flags = {}
  for i, change in ipairs(plan.changes) do
    local fresh = 0
    local seen = OWN .. ':s:' .. change.id
    local lateness -- judged once per change: its jobs share its primary-key row
    if admit(change, seen) then
      -- Only the dedup field: the hash is new. More: a finished run re-created it (markDone),
      -- with its own expiry.
      local marked = change.again or rcall('HLEN', seen) > 1
      if not change.again and (not marked or rcall('PTTL', seen) < 0) then rcall('PEXPIRE', seen, plan.ttl) end
      for _, job in ipairs(change.jobs) do
        if givenUp(job.queue) then
          -- An old replica, still accepting for a workflow an operator gave up: not started.
          fresh = 1
          dropped = dropped + 1
        elseif not known(job, seen, marked) then
          fresh = 1
          -- Decided already (by the late script, in the primary-key row's shard) when the change's
          -- runs live in other shards than that row; here otherwise.
          if lateness == nil then
            if change.late ~= nil then lateness = change.late == 1
            elseif job.pkRow ~= nil then lateness = isLate(job.pkRow, change.version)
            else lateness = false end
          end
          local lateRun = lateness
          if lateRun and job.skipLate then
            skipped = skipped + 1
          else
            if lateRun then late = late + 1 end
            enter(job, lateRun)
          end
        end
      end
    end
    flags[i] = fresh
    if fresh == 1 and change.journal then journal(change) end
  end
  for _, job in ipairs(plan.quarantine) do add(job) end
  -- A newer change no workflow wanted is still its row's newest: an older one arriving later is late.
  for _, position in ipairs(plan.positions) do isLate(position.row, position.version) end

  flags[#flags + 1] = added
  flags[#flags + 1] = late
  flags[#flags + 1] = skipped
  flags[#flags + 1] = dropped
  return flags
end

local results = {}
for _, segment in ipairs(call.segments) do
  plan, now = segment, tonumber(segment.now)
  local result = writeSegment()
  results[#results + 1] = #result
  for _, value in ipairs(result) do results[#results + 1] = value end
end
if trimTo then rcall('XTRIM', OWN .. ':journal', 'MINID', '~', trimTo) end
return results
