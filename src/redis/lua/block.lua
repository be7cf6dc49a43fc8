-- Records that a row cannot move: its head run's current job failed for good ('failed'), or
-- waits in a queue that no worker consumes ('orphaned'). Only when the job really is the head's
-- current job: a stale report (the run moved on meanwhile) records nothing.
--
-- KEYS[1]: the row's queue; ARGV: bull, own, row, queue, job id, reason, now
-- Returns 1 when the row is (now or already) recorded as blocked for that reason, else 0.
BULL, OWN = ARGV[1], ARGV[2]
local row, name, jobId, reason = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local head = rcall('LINDEX', KEYS[1], 0)
if not head then return 0 end
local headQueue, run, firstJob = parseEntry(head)
if headQueue ~= name then return 0 end
local current = rcall('HGET', runKey(run), 'cj') or firstJob
if current ~= jobId then return 0 end
-- A row counts once: a failed head whose workflow then lost its workers stays `failed`.
if reason == 'orphaned' and rcall('ZSCORE', OWN .. ':blocked:failed', row) then return 0 end
rcall('ZADD', OWN .. ':blocked:' .. reason, 'NX', ARGV[7], row)
return 1
