-- wrk script for bench/checkout.sh: complete UCP checkout flows over REST.
-- A flow is POST /checkout-sessions with everything (items, buyer, address,
-- shipping option, payment instrument) -> 201, then
-- POST /checkout-sessions/{id}/complete with success_token -> 200.
-- Each connection sends the completion of a created checkout when one is
-- waiting (any connection of the thread may take it), else a new create.
-- The buyer's email carries "b<thread>-<seq>", echoed in both replies, so a
-- reply is matched to its flow and the flow's latency (create sent ->
-- complete answered) is measured with CLOCK_MONOTONIC (LuaJIT ffi).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } agentd_timespec;
int clock_gettime(int clk, agentd_timespec *ts);
]]
local ts = ffi.new("agentd_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local headers = {
  ["Content-Type"] = "application/json",
  ["UCP-Agent"] = 'profile="https://bench.example/profile"',
}
local product = os.getenv("BENCH_PRODUCT") or "BENCH-1"
local create_tmpl = '{"id":"client-%d-%d","currency":"USD",' ..
  '"line_items":[{"item":{"id":"' .. product .. '"},"quantity":2}],' ..
  '"buyer":{"full_name":"Bench Buyer","email":"b%d-%d@example.com"},' ..
  '"fulfillment":{"methods":[{"type":"shipping","destinations":[{"id":"d1",' ..
  '"street_address":"1 Main St","address_locality":"Springfield","address_region":"IL",' ..
  '"postal_code":"62701","address_country":"US"}],"selected_destination_id":"d1",' ..
  '"groups":[{"selected_option_id":"std-ship"}]}]},' ..
  '"payment":{"instruments":[{"id":"i1","handler_id":"mock_payment_handler","type":"card",' ..
  '"brand":"visa","last_digits":"1111","credential":{"type":"token","token":"success_token"}}],' ..
  '"selected_instrument_id":"i1"}}'
local complete_body = '{"payment_data":{"id":"i1","handler_id":"mock_payment_handler",' ..
  '"type":"card","brand":"visa","last_digits":"1111",' ..
  '"credential":{"type":"token","token":"success_token"}}}'

local queue, qhead, qtail = {}, 1, 0
local started = {}
local seq = 0
-- read by done() through thread:get
lat = {}
flows, creates, errors, lost = 0, 0, 0, 0
first_error = ""

function request()
  if qhead <= qtail then
    local id = queue[qhead]
    queue[qhead] = nil
    qhead = qhead + 1
    return wrk.format("POST", "/checkout-sessions/" .. id .. "/complete", headers, complete_body)
  end
  seq = seq + 1
  started[seq] = now_us()
  return wrk.format("POST", "/checkout-sessions", headers,
                    string.format(create_tmpl, tid, seq, tid, seq))
end

function response(status, hdrs, body)
  local s = tonumber(body:match('"email":"b%d+%-(%d+)@') or "")
  if status == 201 then
    local id = body:match('"id":"(chk_[0-9a-f]+)"')
    if id then
      creates = creates + 1
      qtail = qtail + 1
      queue[qtail] = id
      return
    end
  elseif status == 200 and s and started[s] then
    flows = flows + 1
    lat[#lat + 1] = now_us() - started[s]
    started[s] = nil
    return
  end
  errors = errors + 1
  if first_error == "" then
    first_error = status .. " " .. body:sub(1, 300)
  end
end

local function pct(sorted, p)
  if #sorted == 0 then return 0 end
  local i = math.max(1, math.min(#sorted, math.ceil(#sorted * p / 100)))
  return sorted[i]
end

function done(summary, latency, requests)
  local all, nflows, ncreates, nerrors, ferr = {}, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("lat")) do all[#all + 1] = v end
    nflows = nflows + t:get("flows")
    ncreates = ncreates + t:get("creates")
    nerrors = nerrors + t:get("errors")
    if ferr == "" then ferr = t:get("first_error") end
  end
  table.sort(all)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT flows=%d creates=%d errors=%d seconds=%.2f flows_per_s=%.1f " ..
                         "requests_per_s=%.1f flow_p50_ms=%.2f flow_p90_ms=%.2f flow_p99_ms=%.2f " ..
                         "req_p50_ms=%.2f req_p99_ms=%.2f socket_errors=%d\n",
                         nflows, ncreates, nerrors, secs, nflows / secs, summary.requests / secs,
                         pct(all, 50) / 1000, pct(all, 90) / 1000, pct(all, 99) / 1000,
                         latency:percentile(50) / 1000, latency:percentile(99) / 1000,
                         summary.errors.connect + summary.errors.read + summary.errors.write +
                         summary.errors.timeout))
  if ferr ~= "" then io.write("FIRST_ERROR " .. ferr .. "\n") end
end
