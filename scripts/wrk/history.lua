-- wrk script: POST /recommend for a user the model never saw, described by 20 watched items
-- (MovieLens 100k item keys), k = 10: the query tower encodes the history on every request.
-- wrk -t1 -c32 -d8s --latency -s scripts/wrk/history.lua http://127.0.0.1:18090/recommend
local items = {}
for item = 1, 20 do
  items[#items + 1] = string.format('"%d"', item * 7)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"history": [' .. table.concat(items, ", ") .. '], "k": 10}'
