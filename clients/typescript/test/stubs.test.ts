// The checked-in src/gen is what `buf generate` makes from today's .proto (no stale client).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const PKG = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

test("src/gen matches the proto", () => {
  const out = mkdtempSync(join(tmpdir(), "llm-pool-gen-"));
  execFileSync(join(PKG, "node_modules", ".bin", "buf"), ["generate", "--output", out], { cwd: PKG });
  const file = join("src", "gen", "llmpool", "v1", "llmpool_pb.ts");
  assert.equal(
    readFileSync(join(out, file), "utf8"),
    readFileSync(join(PKG, file), "utf8"),
    `${file} is stale: run npm run generate in clients/typescript`,
  );
});
