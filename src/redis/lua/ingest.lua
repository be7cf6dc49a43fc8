-- Accepts one batch atomically: a change is recorded as seen and its jobs are added together,
-- or not at all. A change already seen (within the dedup horizon) adds nothing.
--
-- ARGV[1]: plan JSON
--   now: ms timestamp (string)   ttl: dedup horizon in ms   opts: { optsJson, ... }
--   queues: { { k = first KEYS index of the queue's 9 keys, p = queue key prefix }, ... }
--   changes: { { s = KEYS index of the seen key, j = { job, ... } }, ... }
--   quarantine: { job, ... }
--   job: { q = queue index, id = job id, n = job name, d = ARGV index of data, o = opts index }
-- Returns: one flag a change, 1 = accepted, 0 = duplicate; then the number of jobs added.
local plan = cjson.decode(ARGV[1])
local now = tonumber(plan.now)
local qks = {}
for i, q in ipairs(plan.queues) do
  qks[i] = queueKeys(q.k)
  local refused = checkQueueKeys(qks[i])
  if refused then return refused end
end

local added = 0
local function add(job)
  local q = plan.queues[job.q]
  if addJob(qks[job.q], q.p, job.id, job.n, ARGV[job.d], plan.opts[job.o], now) == job.id then
    added = added + 1
  end
end

-- Should a command still fail part-way, each change marks itself seen only after its jobs are
-- in: an error can leave a change unmarked, for the redelivery to complete, but never marked
-- without its jobs.
local flags = {}
for i, change in ipairs(plan.changes) do
  if rcall('EXISTS', KEYS[change.s]) == 0 then
    for _, job in ipairs(change.j) do add(job) end
    rcall('SET', KEYS[change.s], now, 'PX', plan.ttl)
    flags[i] = 1
  else
    flags[i] = 0
  end
end
for _, job in ipairs(plan.quarantine) do add(job) end

flags[#flags + 1] = added
return flags
