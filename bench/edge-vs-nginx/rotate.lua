-- wrk script for bench/edge-vs-nginx: every request takes the next object of a small hot set,
-- so both servers see the same rotation. The script is the same for nginx and the edge; only
-- the URL prefix passed after `--` differs.
--
--   wrk ... https://127.0.0.1:PORT -- PREFIX LABEL COUNT
--   e.g. -- /static/hot/ 1m 8   ->   /static/hot/1m-0.bin ... /static/hot/1m-7.bin
--
-- At the end it prints one JSON line with exact totals (wrk's own summary rounds bytes to two
-- digits), which run.py parses.

local paths = {}
local n = 0

function init(args)
  local prefix, label, count = args[1], args[2], tonumber(args[3])
  for i = 0, count - 1 do
    paths[#paths + 1] = prefix .. label .. "-" .. i .. ".bin"
  end
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "bytes": %.0f, "duration_us": %.0f, "p50_us": %.0f, "p99_us": %.0f, "max_us": %.0f, '
      .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "non_2xx_3xx": %d, "timeouts": %d}\n',
    summary.requests, summary.bytes, summary.duration, latency:percentile(50.0), latency:percentile(99.0),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
