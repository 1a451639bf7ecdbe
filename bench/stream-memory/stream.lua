wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}'
