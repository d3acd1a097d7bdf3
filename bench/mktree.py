#!/usr/bin/env python3
"""Builds a deterministic source-code-like tree: N files (default 128,000)
in nested directories, sizes drawn from a log-normal distribution with a
mean of about 13 KiB (about 1.7 GB in all), fixed mtimes. With a third
argument `small`: the same shape with files of 20 to 400 bytes (the
million-file profile)."""
import os, random, sys

root = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 128000
small = len(sys.argv) > 3 and sys.argv[3] == "small"
rng = random.Random(2026)
chunk = bytes(rng.getrandbits(8) for _ in range(1 << 20)).replace(b"\0", b"x")
made = 0
total = 0
top = 0
while made < count:
    for sub in range(16):
        d = os.path.join(root, f"pkg{top:03d}", f"mod{sub:02d}")
        os.makedirs(d, exist_ok=True)
        for i in range(50):
            if made >= count:
                break
            if small:
                size = rng.randrange(20, 401)
            else:
                size = min(int(rng.lognormvariate(8.85, 1.15)), len(chunk))
            off = rng.randrange(0, len(chunk) - size + 1)
            p = os.path.join(d, f"file{i:03d}.c")
            with open(p, "wb") as f:
                f.write(chunk[off:off + size])
            os.utime(p, (1700000000 + made, 1700000000 + made))
            made += 1
            total += size
    top += 1
print(f"{made} files, {total / 1e9:.2f} GB in {root}")
