-- wrk script: POST /recommend with a batch of 64 known users (MovieLens 100k ids 1..64), k = 10.
-- wrk -t1 -c32 -d8s --latency -s scripts/wrk/batch64.lua http://127.0.0.1:18090/recommend
local queries = {}
for user = 1, 64 do
  queries[#queries + 1] = string.format('{"user": "%d", "k": 10}', user)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"queries": [' .. table.concat(queries, ", ") .. ']}'
