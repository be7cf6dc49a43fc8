-- Shared by every changeflow script. `bullmqAddStandardJob` (BullMQ's own add-job script,
-- wrapped as a function when the scripts load) is what puts a job in a queue, so jobs we add
-- are exactly the jobs `Queue.add` would have added, in the same atomic step as our bookkeeping.
local rcall = redis.call

local packedOpts = {}
-- qk: the queue's 9 add-job keys; prefix: the queue's key prefix (`<prefix>:<queue>:`).
local function addJob(qk, prefix, jobId, name, data, optsJson, now)
  local opts = packedOpts[optsJson]
  if opts == nil then
    opts = cmsgpack.pack(cjson.decode(optsJson))
    packedOpts[optsJson] = opts
  end
  return bullmqAddStandardJob(qk, { cmsgpack.pack({ prefix, jobId, name, now }), data, opts })
end

-- KEYS[from .. from + 8] are one queue's add-job keys.
local function queueKeys(from)
  local qk = {}
  for i = 0, 8 do qk[i + 1] = KEYS[from + i] end
  return qk
end
