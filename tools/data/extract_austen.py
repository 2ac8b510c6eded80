#!/usr/bin/env python3
"""Extracts Jane Austen's six novels (public domain) from Debian's r-cran-janeaustenr package into
plain UTF-8 text, for the eval haystacks. Standard library only: the package stores them in R's
lazy-load database (gzip index + zlib-compressed XDR serialisations), which this reads without R.

usage: extract_austen.py OUT_DIR   (writes OUT_DIR/austen.txt, one novel after another)
"""
import gzip
import os
import struct
import sys
import zlib

PKG = "/usr/lib/R/site-library/janeaustenr/data"
NOVELS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey",
          "persuasion"]


class XdrReader:
    """A minimal R unserialize() for the object types these data files use."""

    def __init__(self, data):
        self.d = data
        self.p = 0
        self.refs = []

    def i32(self):
        v = struct.unpack_from(">i", self.d, self.p)[0]
        self.p += 4
        return v

    def f64(self):
        v = struct.unpack_from(">d", self.d, self.p)[0]
        self.p += 8
        return v

    def header(self):
        if self.d[:2] != b"X\n":
            raise ValueError("not an XDR R serialisation")
        self.p = 2
        version = self.i32()
        self.i32()  # writer R version
        self.i32()  # min reader version
        if version == 3:
            n = self.i32()
            self.p += n  # native encoding name

    def item(self):
        flags = self.i32()
        t = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        if t == 254:  # R_NilValue
            return None
        if t in (242, 253, 252, 251):  # empty env, global env, unbound, missing arg
            return None
        if t == 255:  # REFSXP
            idx = flags >> 8
            if idx == 0:
                idx = self.i32()
            return self.refs[idx - 1]
        if t == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if t == 9:  # CHARSXP
            n = self.i32()
            if n == -1:
                return None
            s = self.d[self.p:self.p + n].decode("utf-8", errors="replace")
            self.p += n
            return s
        if t in (2, 6):  # LISTSXP / LANGSXP pairlist
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            del attr
            return [(tag, car)] + (cdr if isinstance(cdr, list) else [])
        if t in (10, 13):  # LGLSXP / INTSXP
            n = self.i32()
            v = [self.i32() for _ in range(n)]
        elif t == 14:  # REALSXP
            n = self.i32()
            v = [self.f64() for _ in range(n)]
        elif t == 16:  # STRSXP
            n = self.i32()
            v = [self.item() for _ in range(n)]
        elif t in (19, 20):  # VECSXP / EXPRSXP
            n = self.i32()
            v = [self.item() for _ in range(n)]
        else:
            raise ValueError(f"unsupported R object type {t} at byte {self.p}")
        if has_attr:
            attrs = self.item()
            if isinstance(attrs, list):
                for tag, val in attrs:
                    if tag == "names" and isinstance(v, list):
                        return dict(zip(val, v))
        return v


def unserialize(blob):
    r = XdrReader(blob)
    r.header()
    return r.item()


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    index = unserialize(gzip.decompress(open(os.path.join(PKG, "Rdata.rdx"), "rb").read()))
    variables = index["variables"]
    rdb = open(os.path.join(PKG, "Rdata.rdb"), "rb").read()
    os.makedirs(out_dir, exist_ok=True)
    parts = []
    for name in NOVELS:
        off, length = variables[name]
        chunk = rdb[off:off + length]
        blob = zlib.decompress(chunk[4:])  # 4-byte big-endian length, then a zlib stream
        lines = unserialize(blob)
        parts.append("\n".join(x or "" for x in lines))
    path = os.path.join(out_dir, "austen.txt")
    with open(path + ".part", "w", encoding="utf-8") as f:
        f.write("\n\n".join(parts) + "\n")
    os.replace(path + ".part", path)
    print(f"haystack: {path} ({os.path.getsize(path)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
