-- wrk script of `python -m bench.latency` (run by it; usable by hand too):
--
--   wrk -t1 -c16 -d15s -s bench/latency/wrk.lua http://127.0.0.1:PORT -- LINES_FILE [CLIENTS] [SEED] [POST_PATH]
--
-- Without POST_PATH, LINES_FILE holds one request path a line (already
-- URL-encoded), written at run time by the benchmark: prefixes sampled from
-- real queries and titles, so popular prefixes repeat. Each request GETs a
-- random line, so over a run the prefixes follow that popularity. A file with a
-- single line (the trivial endpoint) sends that path every time.
--
-- With POST_PATH (events/), LINES_FILE holds one JSON body a line (an event
-- batch) and each request POSTs a random one to POST_PATH with
-- `Content-Type: application/json`.
--
-- Every request carries `X-Forwarded-For: <one of CLIENTS addresses>`, as a
-- reverse proxy in front of gunicorn would: DRF's throttle keys on it, so the
-- throttle history stays per shopper (a few entries) as in production instead
-- of one list for the whole benchmark. Both endpoints get the same header.
--
-- The response hook counts non-2xx answers and suggest answers flagged
-- `"degraded":true` (cache or engine down: a fast but wrong answer).
-- `done` prints one line `BENCH_RESULT key=value ...` that the benchmark parses;
-- latencies are in microseconds.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local requests_pool = {}
non2xx = 0
degraded = 0

function init(args)
   local lines_file = args[1]
   local clients = tonumber(args[2] or "1000")
   local seed = tonumber(args[3] or "1")
   local post_path = args[4]
   math.randomseed(seed)
   local lines = {}
   local fh = assert(io.open(lines_file, "r"))
   for line in fh:lines() do
      if #line > 0 then
         table.insert(lines, line)
      end
   end
   fh:close()
   assert(#lines > 0, "no lines in " .. lines_file)
   -- Pre-format the requests: building them costs the load generator the same
   -- for both endpoints, and nothing at all while the clock runs.
   local n = math.max(#lines, clients)
   for i = 1, n do
      local c = (i - 1) % clients
      local ip = string.format("10.%d.%d.%d", math.floor(c / 65536) % 256,
                               math.floor(c / 256) % 256, c % 256)
      local line = lines[((i - 1) % #lines) + 1]
      if post_path then
         requests_pool[i] = wrk.format("POST", post_path, {["X-Forwarded-For"] = ip,
                                                           ["Content-Type"] = "application/json"}, line)
      else
         requests_pool[i] = wrk.format("GET", line, {["X-Forwarded-For"] = ip})
      end
   end
end

function request()
   return requests_pool[math.random(#requests_pool)]
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   elseif body and string.find(body, '"degraded":true', 1, true) then
      degraded = degraded + 1
   end
end

function done(summary, latency, requests)
   local bad, flagged = 0, 0
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non2xx") or 0)
      flagged = flagged + (thread:get("degraded") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d rps=%.2f p50_us=%d p90_us=%d p95_us=%d p99_us=%d "
         .. "mean_us=%.1f max_us=%d non2xx=%d degraded=%d err_connect=%d err_read=%d "
         .. "err_write=%d err_timeout=%d err_status=%d bytes=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(95),
      latency:percentile(99), latency.mean, latency.max, bad, flagged,
      e.connect, e.read, e.write, e.timeout, e.status, summary.bytes))
end
