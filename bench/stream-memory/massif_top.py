#!/usr/bin/env python3
"""The peak snapshot of `ms_print massif.out` by allocation site: for each top-level entry,
its share, its bytes per stream (argv[2] = the number of streams open) and the first two
frames that are not allocator or collection internals.

  ms_print massif.out > ms.txt; python3 bench/stream-memory/massif_top.py ms.txt 300
"""
import re
import sys

lines = open(sys.argv[1]).read().split("\n")
streams = int(sys.argv[2])
peak = re.search(r"Detailed snapshots: \[.*?(\d+) \(peak\)", "\n".join(lines)).group(1)
start = [i for i, l in enumerate(lines) if re.match(rf"^\s+{peak}\s", l)][-1]
print(lines[start])
tree = []
for l in lines[start + 2:]:
    if re.match(r"^\s+\d+\s+[\d,]+\s+[\d,]+", l):
        break
    m = re.match(r"^([ |]*)->(\d+\.\d+)% \(([\d,]+)B\) (\S+): (.*)", l)
    if m:
        tree.append((len(m.group(1)), float(m.group(2)), int(m.group(3).replace(",", "")), m.group(5)))
generic = re.compile(r"alloc|raw_vec|UnknownInlinedFun|bytes_mut|reserve|realloc|malloc|grow|"
                     r"with_capacity|from_iter|extend|to_vec|clone|Box<|box_new|new_uninit|vec::|"
                     r"String|spec_|RawVec|hashbrown|fmt::|Vec<")
for idx, (ind, pct, size, frame) in enumerate(tree):
    if ind != 0:
        continue
    j, path = idx, []
    while j + 1 < len(tree) and tree[j + 1][0] > tree[j][0] and len(path) < 2:
        j += 1
        if not generic.search(tree[j][3].split("(")[0]):
            path.append(tree[j][3][:120])
    print(f"{pct:6.2f}% {size / streams / 1024:6.1f} KiB/stream  {' <- '.join(path)}")
