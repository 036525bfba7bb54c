-- wrk script for bench/a2a.sh: one agent turn per request, either through
-- POST /chat ($A2A_MODE=chat: {"message":"hello"}, a new session each;
-- chat_key: the same with a unique Idempotency-Key each; tool: the same
-- front and body, for a model that answers with a tool call first, as
-- bench/nginx_model.sh's tool mode does) or
-- through A2A 1.0 SendMessage at POST / ($A2A_MODE=a2a: a new context each,
-- a unique messageId each, since a repeated one would replay its task).
-- A turn counts when the reply is 200 and carries "answer" (chat) or a
-- "result" with a task (a2a); anything else is an error. turns/s = turns /
-- (last answer - first request), as bench/turns.lua counts.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } agentd_a2a_timespec;
int clock_gettime(int clk, agentd_a2a_timespec *ts);
]]
local ts = ffi.new("agentd_a2a_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
local mode = os.getenv("A2A_MODE") or "a2a"
local chat_headers = { ["Content-Type"] = "application/json" }
local a2a_headers = { ["Content-Type"] = "application/json", ["A2A-Version"] = "1.0",
                      ["X-A2A-Extensions"] = "https://ucp.dev/specification/reference?v=2026-01-11" }

local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

ok, bad, first_error = 0, 0, ""
t_first, t_last = 0, 0
local n = 0
local run = tostring(os.time())

function request()
  if t_first == 0 then t_first = now_us() end
  if mode == "chat" or mode == "tool" then
    return wrk.format("POST", "/chat", chat_headers, '{"message":"hello"}')
  end
  n = n + 1
  if mode == "chat_key" then
    -- the same retry safety A2A's messageId gives: an Idempotency-Key each
    chat_headers["Idempotency-Key"] = "bench-" .. run .. "-" .. tid .. "-" .. n
    return wrk.format("POST", "/chat", chat_headers, '{"message":"hello"}')
  end
  local mid = "bench-" .. run .. "-" .. tid .. "-" .. n
  return wrk.format("POST", "/", a2a_headers,
    '{"jsonrpc":"2.0","id":' .. n .. ',"method":"SendMessage","params":{"message":' ..
    '{"role":"ROLE_USER","messageId":"' .. mid .. '","parts":[{"text":"hello"}]}}}')
end

function response(status, hdrs, resp)
  local good
  if mode ~= "a2a" then
    good = status == 200 and resp:find('"answer":', 1, true)
  else
    good = status == 200 and resp:find('"result":', 1, true) and not resp:find('"error":', 1, true)
  end
  if good then
    ok = ok + 1
    t_last = now_us()
    return
  end
  bad = bad + 1
  if first_error == "" then first_error = status .. " " .. resp:sub(1, 300) end
end

function done(summary, latency, requests)
  local nok, nbad, ferr = 0, 0, ""
  local first, last = math.huge, 0
  for _, t in ipairs(threads) do
    local f, l = t:get("t_first"), t:get("t_last")
    if f > 0 and f < first then first = f end
    if l > last then last = l end
    nok = nok + t:get("ok")
    nbad = nbad + t:get("bad")
    if ferr == "" then ferr = t:get("first_error") end
  end
  local e = summary.errors
  local span = (last > first) and (last - first) / 1e6 or summary.duration / 1e6
  io.write(string.format("RESULT ok=%d bad=%d turns_per_s=%.1f p50_ms=%.1f p99_ms=%.1f " ..
                         "errors=%d\n", nok, nbad, nok / span, latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000,
                         nbad + e.connect + e.read + e.write + e.timeout))
  if ferr ~= "" then io.write("FIRST_ERROR " .. ferr:gsub("\n", " ") .. "\n") end
end
