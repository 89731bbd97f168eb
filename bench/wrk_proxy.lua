-- wrk script: drive an explicit HTTP proxy. wrk cannot use a proxy itself, so wrk connects to the
-- proxy's port and this script sends absolute-form request lines (RFC 9112 section 3.2.2),
-- `GET http://host:port/ HTTP/1.1`, which the proxy forwards to host:port.
--
-- usage: wrk -t1 -c10 -d5s -s bench/wrk_proxy.lua http://127.0.0.1:PROXY_PORT -- http://host:port/
-- At the end it prints one JSON line: {"requests": N, "errors": N, ...} for bench_gateway.py.

local request_text

function init(args)
  local target = args[1]
  local hostport = target and target:match("^http://([^/]+)")
  if not hostport then
    error("wrk_proxy.lua: give the origin URL after '--', e.g. -- http://localhost:8001/")
  end
  request_text = wrk.format("GET", target, { ["Host"] = hostport })
end

function request()
  return request_text
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    e.connect, e.read, e.write, e.status, e.timeout))
end
