-- wrk script of `python -m bench.latency` for POST endpoints (events/):
--
--   wrk -t1 -c8 -d15s -s bench/latency/wrk_post.lua http://127.0.0.1:PORT -- PATH BODIES_FILE [CLIENTS] [SEED]
--
-- BODIES_FILE holds one JSON body a line (an event batch), written at run time
-- by the benchmark. Each request POSTs a random one to PATH with
-- `Content-Type: application/json` and `X-Forwarded-For: <one of CLIENTS
-- addresses>` (the benchmark's gunicorn trusts loopback as its proxy), like
-- wrk.lua. `done` prints the same `BENCH_RESULT` line as wrk.lua.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local requests_pool = {}
non2xx = 0
degraded = 0

function init(args)
   local path = args[1]
   local bodies_file = args[2]
   local clients = tonumber(args[3] or "1000")
   local seed = tonumber(args[4] or "1")
   math.randomseed(seed)
   local bodies = {}
   local fh = assert(io.open(bodies_file, "r"))
   for line in fh:lines() do
      if #line > 0 then
         table.insert(bodies, line)
      end
   end
   fh:close()
   assert(#bodies > 0, "no bodies in " .. bodies_file)
   local n = math.max(#bodies, clients)
   for i = 1, n do
      local c = (i - 1) % clients
      local ip = string.format("10.%d.%d.%d", math.floor(c / 65536) % 256,
                               math.floor(c / 256) % 256, c % 256)
      local body = bodies[((i - 1) % #bodies) + 1]
      requests_pool[i] = wrk.format("POST", path, {["X-Forwarded-For"] = ip,
                                                   ["Content-Type"] = "application/json"}, body)
   end
end

function request()
   return requests_pool[math.random(#requests_pool)]
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function done(summary, latency, requests)
   local bad = 0
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non2xx") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d rps=%.2f p50_us=%d p90_us=%d p95_us=%d p99_us=%d "
         .. "mean_us=%.1f max_us=%d non2xx=%d degraded=%d err_connect=%d err_read=%d "
         .. "err_write=%d err_timeout=%d err_status=%d bytes=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(95),
      latency:percentile(99), latency.mean, latency.max, bad, 0,
      e.connect, e.read, e.write, e.timeout, e.status, summary.bytes))
end
