-- A step's completion in one script: its result recorded and what comes next released
-- (advance-step.lua), then its job moved to completed by BullMQ's own moveToFinished, which also
-- fetches the worker's next job. One round trip where there were three. Recorded first, as when
-- the two ran apart: should BullMQ refuse the move (the job's lock was lost), the record stands
-- and a re-run of the job finds it.
--
-- KEYS[1..14]: BullMQ's moveToFinished keys; KEYS[15]: the run's record (on a cluster, then
-- every other key the script may touch)
-- ARGV[1]: n, how many arguments are BullMQ's moveToFinished's; ARGV[2..n+1]: those;
-- ARGV[n+2..]: advance-step.lua's A.
-- Returns what moveToFinished returns.
local n = tonumber(ARGV[1])
local finishKeys, finishArgs, advanceArgs = {}, {}, {}
for i = 1, 14 do finishKeys[i] = KEYS[i] end
for i = 1, n do finishArgs[i] = ARGV[i + 1] end
for i = n + 2, #ARGV do advanceArgs[#advanceArgs + 1] = ARGV[i] end
advanceStep(KEYS[15], advanceArgs)
return bullmqMoveToFinished(finishKeys, finishArgs)
