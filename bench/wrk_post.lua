-- wrk script of bench/harness.py: POSTs the body of the file $WRK_BODY_FILE with the headers of the file
-- $WRK_HEADERS_FILE (one "Name: value" per line); with $WRK_KEYS_FILE (one client key per line) the requests carry
-- those keys as x-api-key in turn, each request prepared once per key. With $WRK_EXPECT set, every response must be a 200 whose body contains that string (the
-- last event of a complete stream); the others are counted as bad. done() prints one line "WRK_JSON {...}" with the
-- latency percentiles (µs), the request count and the checks, which the harness parses.
local f = assert(io.open(assert(os.getenv("WRK_BODY_FILE"), "WRK_BODY_FILE not set"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local hf = os.getenv("WRK_HEADERS_FILE")
if hf ~= nil and hf ~= "" then
    for line in assert(io.open(hf, "r")):lines() do
        local k, v = line:match("^([^:]+):%s*(.-)%s*$")
        if k then
            wrk.headers[k] = v
        end
    end
end

local kf = os.getenv("WRK_KEYS_FILE")
if kf ~= nil and kf ~= "" then
    local reqs = {}
    for key in assert(io.open(kf, "r")):lines() do
        if key ~= "" then
            wrk.headers["x-api-key"] = key
            table.insert(reqs, wrk.format())
        end
    end
    assert(#reqs > 0, "WRK_KEYS_FILE has no key")
    local next_req = 0
    function request()
        next_req = next_req % #reqs + 1
        return reqs[next_req]
    end
end

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

local expect = os.getenv("WRK_EXPECT")
if expect ~= nil and expect ~= "" then
    good = 0
    bad = 0
    function response(status, headers, body)
        if status == 200 and body ~= nil and body:find(expect, 1, true) then
            good = good + 1
        else
            bad = bad + 1
        end
    end
end

function done(summary, latency, requests)
    local good, bad = 0, 0
    for _, t in ipairs(threads) do
        good = good + (t:get("good") or 0)
        bad = bad + (t:get("bad") or 0)
    end
    local e = summary.errors
    io.write(string.format(
        'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
            '"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
            '"checked_ok":%d,"checked_bad":%d}\n',
        summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout, good, bad))
end
