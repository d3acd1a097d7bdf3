#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ from the protocol captures
(../shared/spec/protocol-captures), the config test cases (tests/configs)
and a few hand-written inputs. Run from anywhere; it replaces the seed
directories. Usage: make_seeds.py [CAPTURES_DIR]
"""
import os
import re
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.dirname(HERE)
REPO = os.path.dirname(FUZZ)
CAPS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "..", "shared", "spec", "protocol-captures")
SEEDS = os.path.join(FUZZ, "seeds")

KEY1 = b"pVFfA2D_o0gsDFZQhWOAfAkb22tAJGsbGDgrh1.0yy45hqbQw4WU.J_HVu2G4039"
KEY2 = b"fhiYgzPEJjgF34aeLhK.jcrP0pIUHrmcBKns1VRlng98WJkABo5tE4H2lsMSOJ0."
# the session target's tree (its default C2FUZZ_DIR)
TREE = b"/dev/shm/c2fuzz/tree"


def fresh(target):
    d = os.path.join(SEEDS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def captures(ext):
    for n in sorted(os.listdir(CAPS)):
        if n.endswith(ext) and not re.match(r"3[012]_", n):  # 30-32: TLS ciphertext
            with open(os.path.join(CAPS, n), "rb") as f:
                yield n[: -len(ext)], f.read()


def lit(data):
    """delta LITERAL command(s)"""
    out = b""
    while data:
        part, data = data[:64], data[64:]
        out += bytes([len(part)]) + part
    return out


def copy(off, n):
    """delta COPY with 4-byte offset and length"""
    return bytes([0x45 + 2 * 4 + 2]) + struct.pack(">II", off, n)


DMAGIC = b"rs\x026"


def blob(b):
    return b"octet-stream %d\n" % len(b) + b


# ---- session: the client's bytes after CONFIG and the first HELLO -------
d = fresh("session")
for name, raw in captures(".c2s"):
    lines = raw.split(b"\n", 2)
    # CONFIG line, HELLO line, rest (the harness sends its own HELLO)
    if len(lines) < 3 or not lines[1].upper().startswith(b"HELLO"):
        continue
    rest = lines[2]
    rest = rest.replace(b"/tmp/proto/sync", TREE).replace(KEY2, KEY1)
    rest = rest.replace(b"%25pfx%25", b"%25tree%25")
    rest = rest.replace(b"p2.proto.test", b"fuzzhost").replace(b"p1.proto.test", b"localhost")
    if len(rest) > 4096:
        continue
    write(d, name, rest)

K = KEY1
T = TREE
hello_delta = DMAGIC + lit(b"hello world\n") + b"\0"
hand = {
    "patch_new": b"PATCH %s %s/f\n" % (K, T) + blob(hello_delta) + b"SIG %s %s/f\nBYE\n" % (K, T),
    "patch_copy": b"PATCH %s %s/f\n" % (K, T) + blob(hello_delta)
    + b"PATCH %s %s/f\n" % (K, T) + blob(DMAGIC + copy(0, 6) + lit(b"there\n") + b"\0")
    + b"GETSZ %s %s/f\nGETTM %s %s/f\n" % (K, T, K, T),
    "mkdir_del": b"MKDIR %s %s/d\nMKDIR %s %s/d/e\nSETMOD %s %s/d 16877\nDEL %s %s/d\n"
    % (K, T, K, T, K, T, K, T),
    "nodes": b"MKFIFO %s %s/p\nMKSOCK %s %s/s\nMKCHR %s %s/c 259\nMKBLK %s %s/b 2049\n"
    b"MKLINK %s %s/l target%%20x\nSIG %s %s/l\nTYPE %s %s/l\n"
    % (K, T, K, T, K, T, K, T, K, T, K, T, K, T),
    "setown": b"MKDIR %s %s/o\nSETOWN %s %s/o 65534 65534\nSETIME %s %s/o 1700000000\n"
    b"SETMOD %s %s/o 1777\n" % (K, T, K, T, K, T, K, T),
    "mark_flush": b"MARK %s %s/m\nFLUSH %s %s/m\nMARK %s %s/m\nDEL %s %s/m\n"
    % (K, T, K, T, K, T, K, T),
    "list_group": b"GROUP fuzz,slave\nGROUP x\nLIST fuzzhost - %s\nLIST fuzzhost %s %s\n"
    % (K, T, K),
    "slave": b"MKDIR %s /dev/shm/c2fuzz/slave/x\nLIST fuzzhost - %s\n" % (K, K),
    "prefix": b"MKDIR %s %%25tree%%25/p\nPATCH %s %%25tree%%25/p/f\n" % (K, K) + blob(hello_delta)
    + b"SIG %s %%25tree%%25/p/f\nSIG %s %%25nope%%25/x\n" % (K, K),
    "excluded": b"MKDIR %s %s/excluded\nPATCH %s %s/a.tmp\n" % (K, T, K, T) + blob(hello_delta),
    "errors": b"FOO\nSIG\nSIG %s\nSIG wrongkey %s/x\nPATCH %s %s/f\noctet-stream x\n" % (K, T, K, T),
    "bad_patch": b"PATCH %s %s/f\n" % (K, T) + blob(b"rs\x026\x45\x00\x05\x00") + b"BYE\n",
    "pipeline": b"X-CSYNC2RS-PIPELINE 1\nX-STAT %s %s/f -\n" % (K, T)
    + b"X-PUT %s %s/f reg - 0 0 33188 1700000000\n" % (K, T) + blob(b"content\n")
    + b"X-PUT %s %s/d dir - 0 0 16877 1700000000\nX-STAT %s %s/d v1:type=dir\nBYE\n"
    % (K, T, K, T),
    "hello_again": b"HELLO localhost\nHELLO nosuchhost.invalid\nSIG %s %s\n" % (K, T),
}
for n, b in hand.items():
    write(d, "h_" + n, b)

# ---- tokenize: request lines of the captures ----------------------------
d = fresh("tokenize")
seen = set()
for name, raw in captures(".c2s"):
    for line in raw.split(b"\n"):
        word = line.split(b" ", 1)[0]
        if not line or word in seen or not re.match(rb"^[A-Z-]+$", word):
            continue
        seen.add(word)
        write(d, "%s_%s" % (name, word.decode()), line + b"\n")
for n, b in {
    "blank": b" \t\r\n",
    "percent": b"a%2 %41%42 %4a x%00y %",
    "many": b"x " * 40,
    "nul_args": b"a\0b\0\0c d",
}.items():
    write(d, "h_" + n, b)

# ---- checktxt: check texts of the captures, stat-like inputs ------------
d = fresh("checktxt")
texts = set()
for name, raw in captures(".s2c"):
    for line in raw.split(b"\n"):
        if line.startswith(b"v1:"):
            texts.add(line.split(b"\t")[0])
for i, t in enumerate(sorted(texts)):
    write(d, "cap%02d" % i, t)
write(d, "h_user", b"v1:mtime=17:mode=33188:user=root:group=root:type=reg:size=5")
write(d, "h_weird", b"v1:mtime=-1:mode=x:size=99999999999999999999:target=%ff%3a::=:type=")
# binary stat form: mode, uid, gid, size, mtime, rdev, flags, target
for mode, tgt in ((0o100644, b""), (0o120777, b"some target:%"), (0o40755, b""), (0o20644, b"")):
    write(d, "h_stat_%o" % mode,
          struct.pack("<IIIqqQB", mode, 1000, 1000, 5, 1700000000, 259, 8) + tgt)

# ---- delta: flags, basis length (LE u16), basis, delta ------------------
d = fresh("delta")


def dseed(flags, basis, delta):
    return bytes([flags]) + struct.pack("<H", len(basis)) + basis + delta


n = 0
for name, raw in captures(".c2s"):
    # the deltas sent after PATCH: "octet-stream N\n" + N bytes starting with the magic
    for m in re.finditer(rb"octet-stream (\d+)\n", raw):
        size = int(m.group(1))
        body = raw[m.end(): m.end() + size]
        if body.startswith(DMAGIC) and size <= 4096:
            write(d, "%s_%d" % (name, n), dseed(1, b"", body))
            n += 1
basis = b"line 1\nline 2\nline 3\n" * 4
write(d, "h_copy", dseed(0, basis, DMAGIC + copy(0, 7) + lit(b"new\n") + copy(14, 20) + b"\0"))
write(d, "h_copy_beyond", dseed(0, basis, DMAGIC + copy(80, 10) + b"\0"))
write(d, "h_wide", dseed(0, basis, DMAGIC + bytes([0x41, 3]) + b"abc" + bytes([0x54]) + b"\0" * 16 + b"\0"))
write(d, "h_nobasis_copy", dseed(1, b"", DMAGIC + copy(0, 1) + b"\0"))
write(d, "h_trailing", dseed(0, b"abc", DMAGIC + lit(b"x") + b"\0trailing"))

# ---- config: the config test cases and the session target's config ------
d = fresh("config")
cfgs = os.path.join(REPO, "tests", "configs")
for case in sorted(os.listdir(cfgs)):
    p = os.path.join(cfgs, case, "csync2.cfg")
    if os.path.isfile(p) and os.path.getsize(p) <= 4096:
        shutil.copy(p, os.path.join(d, case))
write(d, "h_full", b"""nossl * *;
tempdir /tmp;
lock-timeout 5;
ignore uid gid;
database sqlite3:///tmp/x.db3;
prefix tree { on h1.cfg.test: /srv/tree; on other*: /x; }
group fuzz {
\thost h1.cfg.test h2@addr (h3);
\tkey k1.key;
\tinclude /srv/tree;
\tinclude %tree%;
\texclude /srv/tree/excluded;
\texclude *.tmp;
\tcompare /srv/cmp;
\tbackup-directory /var/backups;
\tbackup-generations 3;
\tauto younger;
\taction {
\t\tpattern /srv/tree/*.conf;
\t\texec "echo %%";
\t\tlogfile "/tmp/log";
\t\tdo-local;
\t}
}
group g2 { host h4 h1.cfg.test; key k1.key; include /srv/**/x?[a-c]; }
config inc.cfg;
""")
print("seeds written to", SEEDS)
