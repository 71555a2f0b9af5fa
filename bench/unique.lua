-- unique.lua: wrk script that sends unique, validly signed Twilio webhooks.
--
-- Signing happens before the run (bench-gen-requests), because wrk's LuaJIT has no HMAC and
-- signing here would take CPU from the server under test. Each wrk thread reads its own file
-- $BENCH_REQUESTS/requests-<thread>.txt line by line ("<sid> <signature>"), puts the SID into
-- the body template $BENCH_REQUESTS/body.tmpl (at every "@SID@") and sends the raw request.
-- Reading is sequential, so memory stays small whatever the run length. When a file runs out
-- the thread starts it again and counts a wrap: the repeated SIDs are then duplicates, so
-- load.sh rejects a database run that wrapped (size the files for the run instead).
--
-- done() prints one machine-readable line, "BENCH_RESULT key=value ...", for load.sh.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local file, buf, sid_slots, sig_slot

function init(args)
   local dir = os.getenv("BENCH_REQUESTS")
   assert(dir, "BENCH_REQUESTS is not set (the directory bench-gen-requests wrote)")
   local path = dir .. "/requests-" .. tid .. ".txt"
   file = assert(io.open(path, "r"), "cannot open " .. path)
   local tf = assert(io.open(dir .. "/body.tmpl", "r"))
   local template = tf:read("*a")
   tf:close()

   -- Split the template at its markers; the SID has a fixed length (34), so the body length
   -- and Content-Length are the same for every request.
   local pieces, start = {}, 1
   while true do
      local s, e = template:find("@SID@", start, true)
      if not s then break end
      table.insert(pieces, template:sub(start, s - 1))
      start = e + 1
   end
   table.insert(pieces, template:sub(start))
   local body_len = #template - 5 * (#pieces - 1) + 34 * (#pieces - 1)

   local head = "POST " .. wrk.path .. " HTTP/1.1\r\n"
      .. "Host: " .. wrk.headers["Host"] .. "\r\n"
      .. "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
      .. "User-Agent: TwilioProxy/1.1\r\n"
      .. "Content-Length: " .. body_len .. "\r\n"
      .. "X-Twilio-Signature: "
   -- buf is reused for every request: { head, sig, "\r\n\r\n", piece1, sid, piece2, sid, ... }
   buf = { head, "", "\r\n\r\n" }
   sig_slot = 2
   sid_slots = {}
   for i = 1, #pieces do
      table.insert(buf, pieces[i])
      if i < #pieces then
         table.insert(buf, "")
         table.insert(sid_slots, #buf)
      end
   end
   wraps = 0
   sent = 0
end

function request()
   local line = file:read("*l")
   if not line then
      wraps = wraps + 1
      file:seek("set", 0)
      line = assert(file:read("*l"), "empty request file")
   end
   local sid = line:sub(1, 34)
   buf[sig_slot] = line:sub(36)
   for i = 1, #sid_slots do
      buf[sid_slots[i]] = sid
   end
   sent = sent + 1
   return table.concat(buf)
end

function done(summary, latency, requests)
   local total_wraps, total_sent = 0, 0
   for _, t in ipairs(threads) do
      total_wraps = total_wraps + t:get("wraps")
      total_sent = total_sent + t:get("sent")
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT duration_us=%d requests=%d non2xx=%d connect_errors=%d read_errors=%d "
         .. "write_errors=%d timeouts=%d sent=%d wraps=%d p50_us=%d p90_us=%d p99_us=%d "
         .. "p999_us=%d max_us=%d mean_us=%.1f\n",
      summary.duration, summary.requests, e.status, e.connect, e.read, e.write, e.timeout,
      total_sent, total_wraps,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end
