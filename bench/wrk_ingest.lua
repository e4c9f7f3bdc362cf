-- wrk script for bench/bench_ingest.py: every request is a new DripJobs delivery.
--
-- Environment (set by bench_ingest.py):
--   INGEST_SECRET    the connection secret, sent as "Authorization: Bearer <secret>", the
--                    auth mode a Zap uses and that wrk can satisfy honestly (no HMAC in Lua)
--   INGEST_ENTITIES  0: every delivery is a new customer; N > 0: deliveries spread over N
--                    customers (the merge-heavy case: many deliveries to few entities)
--   INGEST_REPEATS   with INGEST_ENTITIES 0: this percentage of deliveries go to a customer
--                    this thread sent earlier (the mixed case: updates on a growing store)
--   INGEST_RUN       a tag that keeps delivery ids unique across runs on one store
--
-- Each wrk thread has its own Lua state; setup() numbers them, so ids never collide.

local threads = {}
local counter = 1

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

function init(args)
   secret = os.getenv("INGEST_SECRET") or "bench-secret-0123456789abcdef"
   entities = tonumber(os.getenv("INGEST_ENTITIES") or "0")
   repeats = tonumber(os.getenv("INGEST_REPEATS") or "0")
   run = os.getenv("INGEST_RUN") or "r"
   headers = {
      ["Authorization"] = "Bearer " .. secret,
      ["Content-Type"] = "application/json",
   }
end

function request()
   counter = counter + 1
   local n = counter
   local customer
   if entities > 0 then
      customer = string.format("m%d", (n * 7 + thread_id) % entities)
   elseif repeats > 0 and n > 10 and math.random(100) <= repeats then
      customer = string.format("%s-%d-%d", run, thread_id, math.random(2, n - 1))
   else
      customer = string.format("%s-%d-%d", run, thread_id, n)
   end
   local body = string.format(
      '{"delivery_id":"%s-%d-%d","Customer ID":"cust-%s","First Name":"Ava",' ..
      '"Last Name":"Reyes%d","Email":"ava%d.%s@example.com","Phone":"(512) 555-0100",' ..
      '"Address":"1 Main St","City":"Austin","State":"TX","Zip":"78701",' ..
      '"Lead Source":"Google","updated_at":%d}',
      run, thread_id, n, customer, n % 1000, n, customer, 1800000000 + n)
   return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
   local non2xx = summary.errors.status
   io.write(string.format(
      'WRK-JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,' ..
      '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
      summary.requests, summary.duration, non2xx, summary.errors.connect,
      summary.errors.read, summary.errors.write, summary.errors.timeout,
      latency:percentile(50), latency:percentile(99)))
end
