"""The checked-in stubs are what generate.sh makes from today's .proto (no stale client)."""

import filecmp
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def test_stubs_match_the_proto(tmp_path):
    subprocess.run(
        [str(HERE / "generate.sh"), str(tmp_path)],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    for name in ("llmpool_pb2.py", "llmpool_pb2.pyi", "llmpool_pb2_grpc.py"):
        fresh = tmp_path / "llmpool" / "v1" / name
        assert filecmp.cmp(fresh, HERE / "llmpool" / "v1" / name, shallow=False), (
            f"llmpool/v1/{name} is stale: run clients/python/generate.sh"
        )
