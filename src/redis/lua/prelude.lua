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

-- Redis does not undo a script's earlier writes when a later command fails, and BullMQ's add
-- writes the job hash before pushing its id: a key of the wrong type (an operator's mistake, a
-- foreign tool) would leave a job that exists but is in no list, and that a redelivery would
-- then take for a duplicate. Checking every key's type first turns that into a clean refusal.
local expectedTypes = { 'list', 'list', 'hash', 'string', 'zset', 'zset', 'list', 'stream', 'zset' }
local function checkQueueKeys(qk)
  for i, key in ipairs(qk) do
    local found = rcall('TYPE', key)['ok']
    if found ~= 'none' and found ~= expectedTypes[i] then
      return redis.error_reply('CF_KEYTYPE ' .. key .. ' is a ' .. found .. ', not a ' .. expectedTypes[i] .. ': nothing was written')
    end
  end
end
