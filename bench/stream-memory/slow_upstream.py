import asyncio, sys
async def handle(r, w):
    try:
        while True:
            line = await r.readline()
            if not line: return
            head = [line]
            while True:
                l = await r.readline()
                if l in (b"\r\n", b""): break
                head.append(l)
            n = 0
            for h in head:
                if h.lower().startswith(b"content-length:"): n = int(h.split(b":")[1])
            if n: await r.readexactly(n)
            if head[0].startswith(b"GET"):
                body = b'{"object":"list","data":[{"id":"m"}]}'
                w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body); await w.drain(); continue
            w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            ev = b'data: {"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
            w.write(b"%x\r\n%s\r\n" % (len(ev), ev)); await w.drain()
            await asyncio.sleep(3600)
    except Exception:
        pass
async def main():
    s = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    await s.serve_forever()
asyncio.run(main())
