#!/usr/bin/env python3
"""Latency and burst driver for bench/watch.sh.

watchlat.py latency SRC DST SAMPLES  -> one line per sample: seconds from a
    write of a new file at a random directory of SRC until the file with its
    whole content is in DST (the same relative path).
watchlat.py burst SRC DST COUNT TAG  -> seconds from the first of COUNT new
    files (in new directories of SRC) until the last one is complete in DST.
watchlat.py clean SRC TAG            -> removes what the runs made (then the
    watcher propagates the deletions).
Gives up on a file after 120 s (prints 'timeout' and exits 1)."""
import os, random, sys, time

def dirs_of(root):
    out = []
    for d, subdirs, _ in os.walk(root):
        subdirs[:] = [s for s in subdirs if not s.startswith(".")]
        out.append(os.path.relpath(d, root))
    return out

def wait_for(path, content, deadline):
    while time.time() < deadline:
        try:
            with open(path, "rb") as f:
                if f.read() == content:
                    return True
        except OSError:
            pass
        time.sleep(0.002)
    return False

def latency(src, dst, samples):
    rng = random.Random(15)
    dirs = dirs_of(src)
    for i in range(samples):
        rel = os.path.join(rng.choice(dirs), f"lat-{i:04d}.txt")
        content = f"sample {i} {time.time()}\n".encode()
        t0 = time.time()
        with open(os.path.join(src, rel), "wb") as f:
            f.write(content)
        if not wait_for(os.path.join(dst, rel), content, t0 + float(os.environ.get("LAT_GIVEUP", "120"))):
            print("timeout", rel, flush=True)
            sys.exit(1)
        print(f"{time.time() - t0:.4f}", flush=True)
        # each change its own batch
        time.sleep(0.3 + rng.random() * 0.2)

def burst(src, dst, count, tag):
    top = os.path.join(src, f"burst-{tag}")
    names = []
    t0 = time.time()
    for i in range(count):
        d = os.path.join(f"burst-{tag}", f"d{i // 100:03d}")
        if i % 100 == 0:
            os.makedirs(os.path.join(src, d), exist_ok=True)
        rel = os.path.join(d, f"f{i:05d}.txt")
        with open(os.path.join(src, rel), "wb") as f:
            f.write(f"burst {tag} {i}\n".encode())
        names.append(rel)
    for i, rel in enumerate(names):
        if not wait_for(os.path.join(dst, rel), f"burst {tag} {i}\n".encode(), t0 + 600):
            print("timeout", rel, flush=True)
            sys.exit(1)
    print(f"{time.time() - t0:.3f}")

def clean(src, tag):
    import shutil
    for d, _, files in os.walk(src):
        for f in files:
            if f.startswith("lat-"):
                os.unlink(os.path.join(d, f))
    shutil.rmtree(os.path.join(src, f"burst-{tag}"), ignore_errors=True)

cmd = sys.argv[1]
if cmd == "latency":
    latency(sys.argv[2], sys.argv[3], int(sys.argv[4]))
elif cmd == "burst":
    burst(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
elif cmd == "clean":
    clean(sys.argv[2], sys.argv[3])
