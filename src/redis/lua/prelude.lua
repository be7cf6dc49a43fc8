-- Shared by every changeflow script. Jobs are added in the same atomic step as our bookkeeping:
-- a plain new job with the commands BullMQ's add script would run (addJob below, checked
-- against that script by test/src/redis/add-job.test.ts), anything else by that script itself
-- (`bullmqAddStandardJob`, BullMQ's own add-job script wrapped as a function when the scripts
-- load).
--
-- Keys: BullMQ's are `<BULL>:<queue>:<type>`; ours are `<OWN>:s:<change>` (dedup hash),
-- `<OWN>:run:<run>` (a run's step results; for ordered runs past their first step also `cj`,
-- the current job, and for a run waiting its turn its parked first job `pj pn pd po`; `done`
-- or `discarded` once it ended, `late` for a late change), `<OWN>:rowq:<row>` (a row's runs in
-- acceptance order as `<queue>/<run>/<first job>`, head = the run allowed to execute),
-- `<OWN>:v:<row>` (the newest commit position accepted for the row), `<OWN>:rows` (rows with
-- a run waiting behind another, scored by when their head last moved: what the reconciler
-- looks at), `<OWN>:blocked:failed` and `<OWN>:blocked:orphaned` (rows whose head cannot move:
-- its step failed for good, or its job waits in a queue no worker consumes), `<OWN>:queues`
-- (every queue work was ever added to) and `<OWN>:consumers` (queues, scored by the last time
-- a worker said it consumes them). The Keyspace (keys.ts) names the same keys. BULL and OWN
-- share one hash tag: one Cluster slot.
local rcall = redis.call
local BULL, OWN

-- Redis does not undo a script's earlier writes when a later command fails, and BullMQ's add
-- writes the job hash before pushing its id: a key of the wrong type (an operator's mistake, a
-- foreign tool) would leave a job that exists but is in no list, and that a redelivery would
-- then take for a duplicate. Scripts look every queue up (and so check it) before writing.
local expectedTypes = { 'list', 'list', 'hash', 'string', 'zset', 'zset', 'list', 'stream', 'zset' }
local queues = {}
local function queue(name)
  local q = queues[name]
  if q then return q end
  local base = BULL .. ':' .. name .. ':'
  local keys = { base .. 'wait', base .. 'paused', base .. 'meta', base .. 'id', base .. 'completed',
    base .. 'delayed', base .. 'active', base .. 'events', base .. 'marker' }
  for i, key in ipairs(keys) do
    local found = rcall('TYPE', key)['ok']
    if found ~= 'none' and found ~= expectedTypes[i] then
      error('CF_KEYTYPE ' .. key .. ' is a ' .. found .. ', not a ' .. expectedTypes[i] .. ': nothing was written')
    end
  end
  q = { keys = keys, prefix = base }
  queues[name] = q
  return q
end

-- A queue's settings, read once a script (nothing else runs while it does): BullMQ's event
-- stream bound (set to its default when missing, as BullMQ's add does) and whether it is paused
-- or at its global concurrency (then no marker wakes its workers).
local function queueState(q)
  if q.maxEvents then return end
  local meta = q.keys[3]
  local attributes = rcall('HMGET', meta, 'opts.maxLenEvents', 'paused', 'concurrency')
  local maxEvents = attributes[1]
  if not maxEvents then
    maxEvents = '10000'
    rcall('HSET', meta, 'opts.maxLenEvents', maxEvents)
  end
  q.maxEvents = maxEvents
  q.held = attributes[2] ~= false or (attributes[3] ~= false and rcall('LLEN', q.keys[7]) >= tonumber(attributes[3]))
end

-- Whether a job with these options is a plain one (no delay, priority, deduplication or LIFO),
-- and the options as BullMQ's add script takes them (MessagePack), made when needed.
local optionsOf = {}
local function options(optsJson)
  local known = optionsOf[optsJson]
  if known then return known end
  local decoded = cjson.decode(optsJson)
  known = {
    decoded = decoded,
    plain = (decoded.delay or 0) == 0 and (decoded.priority or 0) == 0 and decoded.de == nil and not decoded.lifo,
  }
  optionsOf[optsJson] = known
  return known
end

-- A Lua number given to a command is formatted (with %.17g) every time: formatted once here.
local formatted = {}
local function asText(n)
  local text = formatted[n]
  if not text then
    text = string.format('%.17g', n)
    formatted[n] = text
  end
  return text
end

-- Adds a job as BullMQ's add script would (the job hash, its 'added' and 'waiting' events, the
-- wait list, the id counter, the marker that wakes a worker), without running that script a job:
-- the queue's settings are read once a script, and each job is a handful of commands, written
-- whole before the next (an error later in the script leaves no job outside its list). The
-- options are stored as given (BullMQ's script stores the same JSON, its keys in another order).
-- Anything but a plain new job (an id that exists, a delay, a priority, ...) goes through
-- BullMQ's script.
local function addJob(q, jobId, name, data, optsJson, now)
  local opts = options(optsJson)
  local jobKey = q.prefix .. jobId
  if not opts.plain or rcall('EXISTS', jobKey) == 1 then
    opts.packed = opts.packed or cmsgpack.pack(opts.decoded)
    return bullmqAddStandardJob(q.keys, { cmsgpack.pack({ q.prefix, jobId, name, now }), data, opts.packed })
  end
  -- In BullMQ's order: should a command fail (the counter holds no number), no job is half added.
  rcall('INCR', q.keys[4])
  queueState(q)
  rcall('HMSET', jobKey, 'name', name, 'data', data, 'opts', optsJson, 'timestamp', asText(now), 'delay', '0', 'priority', '0')
  rcall('XADD', q.keys[8], '*', 'event', 'added', 'jobId', jobId, 'name', name)
  rcall('LPUSH', q.keys[1], jobId)
  if not q.held and not q.marked then
    rcall('ZADD', q.keys[9], '0', '0')
    q.marked = true
  end
  rcall('XADD', q.keys[8], 'MAXLEN', '~', q.maxEvents, '*', 'event', 'waiting', 'jobId', jobId)
  return jobId
end

local function runKey(run)
  return OWN .. ':run:' .. run
end

-- A row queue entry: `<queue>/<run>/<first job id>` (job ids hold no '/').
local function rowEntry(name, run, jobId)
  return name .. '/' .. run .. '/' .. jobId
end

local function parseEntry(entry)
  return string.match(entry, '^(.-)/(.-)/(.*)$')
end

-- Compares commit positions given as canonical decimal text (no leading zeros), exactly: a
-- Lua number is a double and would round an LSN past 2^53. Returns <0, 0 or >0.
local function compareDecimal(a, b)
  if #a ~= #b then return #a - #b end
  if a == b then return 0 end
  return a < b and -1 or 1
end

local function comparePositions(lsnA, idxA, lsnB, idxB)
  local byLsn = compareDecimal(lsnA, lsnB)
  if byLsn ~= 0 then return byLsn end
  return compareDecimal(idxA, idxB)
end

-- Sequin can deliver a row's newer change before an older one that waited out a retry backoff.
-- Is this change older than the newest accepted for the row? If not, it becomes the newest (kept
-- `ttl` ms). Positions are compared as decimal text: an LSN past 2^53 is exact, where a Lua
-- number is not.
local function isLateAt(row, version, ttl)
  if not version then return false end
  local key = OWN .. ':v:' .. row
  local newest = rcall('GET', key)
  if newest then
    local lsn, idx = string.match(newest, '^(%d+):(%d+)$')
    if lsn and comparePositions(version[1], version[2], lsn, idx) < 0 then return true end
  end
  rcall('SET', key, version[1] .. ':' .. version[2], 'PX', ttl)
  return false
end

-- The row's head moved (or left): nothing blocks it any more until something says so again.
local function unblock(row)
  local failed, orphaned = OWN .. ':blocked:failed', OWN .. ':blocked:orphaned'
  if rcall('EXISTS', failed, orphaned) == 0 then return end -- most of the time no row is blocked
  rcall('ZREM', failed, row)
  rcall('ZREM', orphaned, row)
end

-- Messages held by the quarantine: waiting to be (re)validated, or failed and kept for an operator.
local function quarantineSize()
  local base = BULL .. ':quarantine:'
  return rcall('LLEN', base .. 'wait') + rcall('LLEN', base .. 'active') + rcall('LLEN', base .. 'paused') +
    rcall('ZCARD', base .. 'failed') + rcall('ZCARD', base .. 'delayed') + rcall('ZCARD', base .. 'prioritized')
end

-- Starts a row's head run: adds its parked first job. A run with nothing parked stays as it is.
-- How long (ms) the marks of a run that ended are kept: set by the scripts that end runs.
local RECORD_TTL

-- A finished run's marker: its workflow's field in its change's dedup hash, 'd'. The hash then
-- lives at least a dedup horizon from the run's end (a redelivery of the change soon after finds
-- it), and one that expired while the run was unfinished (a row blocked for long) is created again.
local function markDone(seen, workflow)
  rcall('HSET', seen, workflow, 'd')
  if RECORD_TTL and rcall('PTTL', seen) < tonumber(RECORD_TTL) then rcall('PEXPIRE', seen, RECORD_TTL) end
end

-- A run's record after it was given up: what a retried job of it finds, so that it runs nothing.
local function markDiscarded(run, now)
  local key = runKey(run)
  rcall('HDEL', key, 'cj', 'pj', 'pn', 'pd', 'po')
  rcall('HSET', key, 'discarded', now)
  if RECORD_TTL then rcall('PEXPIRE', key, RECORD_TTL) end
end

-- A workflow an operator gave up (discard-workflow): its runs are not started any more.
local function isDiscardedQueue(name)
  return rcall('SISMEMBER', OWN .. ':discarded-queues', name) == 1
end

-- Starts a row's head run: adds its parked first job. Returns 'started', 'waiting' (nothing
-- parked: it runs already) or 'discarded' (its workflow was given up: marked, not started).
local function startRun(entry, now)
  local name, run = parseEntry(entry)
  local key = runKey(run)
  local parked = rcall('HMGET', key, 'pj', 'pn', 'pd', 'po')
  if not parked[1] then return 'waiting' end
  if isDiscardedQueue(name) then
    markDiscarded(run, now)
    return 'discarded'
  end
  addJob(queue(name), parked[1], parked[2], parked[3], parked[4], now)
  rcall('HDEL', key, 'pj', 'pn', 'pd', 'po')
  return 'started'
end

-- The row's head left: start the next run, passing over (and dropping) runs of workflows that
-- were given up. At most a thousand per call, so that a script stays short; the reconciler
-- carries on with what is left. `known`, when the caller just read them: the row's first entry
-- and whether another follows it.
local function startNext(row, now, known)
  local rq = OWN .. ':rowq:' .. row
  local more -- whether a run still waits behind the one that starts
  for i = 1, 1000 do
    local nextEntry
    if i == 1 and known then nextEntry = known.first else nextEntry = rcall('LINDEX', rq, 0) end
    if not nextEntry then break end
    if startRun(nextEntry, now) ~= 'discarded' then
      if i == 1 and known then more = known.more end
      break
    end
    rcall('LPOP', rq)
  end
  if more == nil then more = rcall('LLEN', rq) > 1 end
  if more then
    rcall('ZADD', OWN .. ':rows', now, row)
  else
    rcall('ZREM', OWN .. ':rows', row)
  end
end

-- The run (`<queue>/<run>/`) leaves its row; the row's next run, if any, starts.
local function leaveRow(row, runPrefix, now)
  local rq = OWN .. ':rowq:' .. row
  local entries = rcall('LRANGE', rq, 0, 2)
  local head = entries[1]
  if not head or string.sub(head, 1, #runPrefix) ~= runPrefix then
    -- Discarded while waiting: it never ran, nothing else moves. (Looked for among the first
    -- thousand entries only: a script must stay short however long a blocked row grew.)
    for _, entry in ipairs(rcall('LRANGE', rq, 0, 999)) do
      if string.sub(entry, 1, #runPrefix) == runPrefix then rcall('LREM', rq, 1, entry) end
    end
    return
  end
  local following = entries[2]
  if following then queue((parseEntry(following))) end -- checked before anything is written
  rcall('LPOP', rq)
  unblock(row)
  if not following then
    rcall('ZREM', OWN .. ':rows', row)
    return
  end
  startNext(row, now, { first = following, more = entries[3] ~= nil })
end
