-- Accepts one batch: a change is recorded as seen together with its runs, or not at all, and a
-- change already seen (within the dedup horizon) adds nothing. Ordered runs join their row's
-- queue and start only when they reach its head.
--
-- KEYS[1]: any key of the keyspace (routes the call to the right Cluster node)
-- ARGV[1]: plan JSON
--   bull, own: key prefixes; now: ms (string); ttl: dedup horizon in ms
--   queues: { name, ... } every queue the plan adds to; opts: { optsJson, ... }
--   changes: { { s = change id, v = { lsn, idx } (strings; absent on reads), j = { job, ... } } }
--   quarantine: { job, ... }
--   job: { q = queue, id, n = name, d = ARGV index of the data, o = opts index,
--          run, row (the row whose queue it joins), pk (its primary-key row: for late
--          detection; absent for tables without a primary key), ord = ordered, skip = skip when late }
-- Returns: one flag a change (1 accepted, 0 duplicate), then jobs added, late runs, skipped runs.
local plan = cjson.decode(ARGV[1])
BULL, OWN = plan.bull, plan.own
local now = tonumber(plan.now)
for _, name in ipairs(plan.queues) do queue(name) end

local added, late, skipped = 0, 0, 0
local function add(job)
  addJob(queue(job.q), job.id, job.n, ARGV[job.d], plan.opts[job.o], now)
  added = added + 1
end

-- Sequin can deliver a row's newer change before an older one that waited out a retry backoff.
-- Is this change older than the newest accepted for the row? If not, it becomes the newest.
local function isLate(row, v)
  if not v then return false end
  local key = OWN .. ':rowv:' .. row
  local newest = rcall('GET', key)
  if newest then
    local lsn, idx = string.match(newest, '^(%d+):(%d+)$')
    lsn, idx = tonumber(lsn), tonumber(idx)
    local vl, vi = tonumber(v[1]), tonumber(v[2])
    if vl < lsn or (vl == lsn and vi < idx) then return true end
  end
  rcall('SET', key, v[1] .. ':' .. v[2], 'PX', plan.ttl)
  return false
end

local function enter(job, lateRun)
  local key = runKey(job.run)
  if lateRun then rcall('HSET', key, 'late', 1) end
  if not job.ord then
    add(job)
    if lateRun then rcall('PEXPIRE', key, plan.ttl) end
    return
  end
  -- An ordered run's record has no expiry until the run finishes: a row may stay blocked long.
  if rcall('RPUSH', OWN .. ':rowq:' .. job.row, job.q .. '/' .. job.run .. '/' .. job.id) == 1 then
    add(job)
  else
    rcall('HSET', key, 'pj', job.id, 'pn', job.n, 'pd', ARGV[job.d], 'po', plan.opts[job.o])
    rcall('ZADD', OWN .. ':rows', 'NX', now, job.row)
  end
end

-- Marked seen first, in one command: the type checks above leave nothing that could fail
-- between a change's mark and its runs (Redis lets a script that has begun writing finish even
-- past maxmemory).
local flags = {}
for i, change in ipairs(plan.changes) do
  if rcall('SET', OWN .. ':seen:' .. change.s, now, 'NX', 'PX', plan.ttl) then
    for _, job in ipairs(change.j) do
      local lateRun = job.pk ~= nil and isLate(job.pk, change.v)
      if lateRun and job.skip then
        skipped = skipped + 1
      else
        if lateRun then late = late + 1 end
        enter(job, lateRun)
      end
    end
    flags[i] = 1
  else
    flags[i] = 0
  end
end
for _, job in ipairs(plan.quarantine) do add(job) end

flags[#flags + 1] = added
flags[#flags + 1] = late
flags[#flags + 1] = skipped
return flags
