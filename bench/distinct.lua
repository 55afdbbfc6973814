-- wrk script: request every URL of the site once per cycle (distinct URLs,
-- not one hot page), so the rate is what the origin can serve to a crawler.
-- Input lines: `<path>`, or `<path> "<etag>"` to send it as If-None-Match
-- (every answer a 304: the origin's limit for re-checking an unchanged site).
local paths, etags = {}, {}
local idx = 0

init = function(args)
  local f = io.open(args[1], "r")
  for line in f:lines() do
    local path, etag = line:match("^(%S+)%s*(.*)$")
    paths[#paths + 1] = path
    etags[#etags + 1] = etag
  end
  f:close()
  idx = math.random(#paths)
end

request = function()
  idx = idx % #paths + 1
  if etags[idx] ~= "" then
    return wrk.format("GET", paths[idx], { ["If-None-Match"] = etags[idx] })
  end
  return wrk.format("GET", paths[idx])
end
