import asyncio, sys, json
BODY = json.dumps({"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hello there, this is a twenty token answer from the fake origin server."}}],"usage":{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}}).encode()
RESP = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY) + BODY
MODELS = b'{"object":"list","data":[{"id":"m"}]}'
async def handle(r, w):
    try:
        while True:
            line = await r.readline()
            if not line: return
            n = 0
            while True:
                l = await r.readline()
                if l in (b"\r\n", b""): break
                if l.lower().startswith(b"content-length:"): n = int(l.split(b":")[1])
            if n: await r.readexactly(n)
            if line.startswith(b"GET"):
                w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(MODELS) + MODELS)
            else:
                w.write(RESP)
            await w.drain()
    except Exception:
        pass
async def main():
    s = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await s.serve_forever()
asyncio.run(main())
