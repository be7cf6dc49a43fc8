-- A step's completion recorded on its own (advance-step.lua), for a step job that BullMQ then
-- completes itself: what a worker does when it cannot complete the job in the same script.
--
-- KEYS[1]: the run's record (on a cluster, then every key the script may touch)
-- ARGV: as advance-step.lua's A.
return advanceStep(KEYS[1], ARGV)
