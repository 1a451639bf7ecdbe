"""Ask a running pool, stream an answer, and handle its errors by class.

    python examples/query.py 127.0.0.1:7070 chat "Say hello"
    LLM_POOL_API_KEY=... python examples/query.py https://pool.internal:7070 classify_domain "..."
"""

import os
import sys

import llm_pool_client as lp

args = sys.argv[1:] + [None] * 3
address = args[0] or "127.0.0.1:7070"
task = args[1] or "chat"
text = args[2] or "Say hello"

with lp.Client(address, api_key=os.environ.get("LLM_POOL_API_KEY"), timeout=30) as pool:
    try:
        answer = pool.query(task, text, max_tokens=32)
    except lp.RateLimited as e:
        sys.exit(f"busy, retry in {e.retry_after}s")
    except lp.NoConsensus as e:
        sys.exit(f"the models disagreed: {[c.text for c in e.decision.candidates]}")
    except lp.LlmPoolError as e:
        sys.exit(f"{e.code.name}: {e.message}")
    print(answer.text)
    d = answer.decision
    print(f"-- {d.winner} won ({lp.pb.Strategy.Name(d.strategy)}), {answer.latency_ms} ms")

    for chunk in pool.stream(task, text, max_tokens=32):
        print(chunk.delta, end="", flush=True)
    print()
