-- wrk script: request every URL of the site once per cycle (distinct URLs,
-- not one hot page), so the rate is what the origin can serve to a crawler.
local paths = {}
local idx = 0

init = function(args)
  local f = io.open(args[1], "r")
  for line in f:lines() do
    paths[#paths + 1] = line
  end
  f:close()
  idx = math.random(#paths)
end

request = function()
  idx = idx % #paths + 1
  return wrk.format("GET", paths[idx])
end
