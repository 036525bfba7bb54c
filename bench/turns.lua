-- wrk script for bench/turns.sh: agent turns through POST /chat.
-- Every request is a new session (no session_id), or one of the sessions in
-- $TURN_SESSIONS, with the message from $TURN_MESSAGE. A turn counts as done when the reply is 200 with an "answer";
-- anything else is an error, counted by status (first body kept). wrk's own
-- latency histogram (request written -> reply read) is the turn latency.
-- turns/s = completed turns / (last completed turn - first request), so the
-- turns wrk abandons in flight at the end of -d do not dilute the rate (with
-- 2 s turns a 20 s run would otherwise lose up to a tenth of it).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } agentd_turns_timespec;
int clock_gettime(int clk, agentd_turns_timespec *ts);
]]
local ts = ffi.new("agentd_turns_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
local msg = os.getenv("TURN_MESSAGE") or "hello"
local quoted = '"' .. msg:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
local body = '{"message":' .. quoted .. '}'
local headers = { ["Content-Type"] = "application/json" }

-- $TURN_SESSIONS names a file of session ids (one a line): then every
-- request goes on one of them, round-robin over this thread's share (ids
-- i with i % threads == this thread's number), so each session's history
-- grows turn after turn. Unset: a new session per turn.
local sessions_file = os.getenv("TURN_SESSIONS")
local mine, next_i = {}, 1

local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  if not sessions_file then return end
  local f = assert(io.open(sessions_file, "r"))
  local all = {}
  for line in f:lines() do
    if line ~= "" then all[#all + 1] = line end
  end
  f:close()
  local n = tonumber(os.getenv("TURN_THREADS") or "1")
  for i, sid in ipairs(all) do
    if (i - 1) % n == tid then mine[#mine + 1] = sid end
  end
  assert(#mine > 0, "no sessions for thread " .. tid)
end

-- read by done() through thread:get
ok, bad, first_error = 0, 0, ""
t_first, t_last = 0, 0
codes = ""
local by_status = {}

function request()
  if t_first == 0 then t_first = now_us() end
  if #mine == 0 then return wrk.format("POST", "/chat", headers, body) end
  local sid = mine[next_i]
  next_i = next_i % #mine + 1
  return wrk.format("POST", "/chat", headers,
                    '{"message":' .. quoted .. ',"session_id":"' .. sid .. '"}')
end

function response(status, hdrs, resp)
  if status == 200 and resp:find('"answer":', 1, true) then
    ok = ok + 1
    t_last = now_us()
    return
  end
  bad = bad + 1
  by_status[status] = (by_status[status] or 0) + 1
  local parts = {}
  for s, n in pairs(by_status) do parts[#parts + 1] = s .. ":" .. n end
  codes = table.concat(parts, ",")
  if first_error == "" then
    first_error = status .. " " .. resp:sub(1, 300)
  end
end

function done(summary, latency, requests)
  local nok, nbad, ferr, allcodes = 0, 0, "", {}
  local first, last = math.huge, 0
  for _, t in ipairs(threads) do
    local f, l = t:get("t_first"), t:get("t_last")
    if f > 0 and f < first then first = f end
    if l > last then last = l end
    nok = nok + t:get("ok")
    nbad = nbad + t:get("bad")
    if ferr == "" then ferr = t:get("first_error") end
    local c = t:get("codes")
    if c ~= "" then allcodes[#allcodes + 1] = c end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  local span = (last > first) and (last - first) / 1e6 or secs
  io.write(string.format("RESULT ok=%d bad=%d codes=%s seconds=%.2f turns_per_s=%.1f " ..
                         "p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f " ..
                         "connect=%d read=%d write=%d timeout=%d\n",
                         nok, nbad, (#allcodes > 0 and table.concat(allcodes, ";") or "-"), span,
                         nok / span, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
                         latency:percentile(99) / 1000, latency.max / 1000,
                         e.connect, e.read, e.write, e.timeout))
  if ferr ~= "" then io.write("FIRST_ERROR " .. ferr:gsub("\n", " ") .. "\n") end
end
