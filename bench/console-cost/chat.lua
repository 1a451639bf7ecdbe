wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","max_tokens":16,"messages":[{"role":"user","content":"Say hello"}]}'
