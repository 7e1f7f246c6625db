"""A probe of bad inputs against the ``pixlink`` command line (issue #11).

Runs each probe (a ``pixlink ...`` command with one bad input: truncated and mis-encoded dumps,
corrupt / 16-bit / huge-header images, odd boxes, missing files, bad ``--config`` and
``--overlay``, very long texts, a KB build into a directory that is not a KB...) in its own
subprocess with a timeout, and reports per probe:

* ``exit``: the exit code (``timeout`` when it ran out of time);
* ``code``: the ``[Exxx]`` code of the ``error:`` line on stderr (else the first code seen;
  ``usage`` for one of click's usage errors, which name the option and exit 2);
* ``traceback``: whether a Python traceback reached the user;
* ``lost``: what went missing or appeared — ``answer lost`` (a ``--json`` run that did the work
  but printed no JSON), ``created <path>`` (a directory the user did not ask for);
* ``verdict``: ``ok`` when the command ended as expected (a coded error and exit 2 for bad
  input, or exit 0 where the input is odd but usable), else what is wrong.

The probe only reports; it fixes nothing. Fixtures are made in a temporary directory from the
shared photos (``$PIXLINK_DATA/photos``) and a small people KB built there; link probes use a
lexical-only linker configuration so that they do not wait for models unless the probe is
about them.

Usage: ``python benchmarks/probe_cli.py [--only SUBSTRING] [--timeout 600]
[--out benchmarks/results/probe_cli.json]``. Prints a table; writes the JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PIXLINK_DATA", REPO.parent / "shared" / "data"))
PHOTOS = DATA / "photos"
OBAMA_BOX = "1110,360,1380,645"  # Obama's head in obama_and_biden.jpg (XYXY pixels)
CODE = re.compile(r"\[(E\d{3})\]")
ERROR_CODE = re.compile(r"error: \[(E\d{3})\]")
USAGE = ("Invalid value", "Missing option", "Missing argument", "No such option", "Got unexpected extra")
"""click's usage errors (exit 2 with the option named): a clear refusal, shown as code ``usage``."""


@dataclass
class Probe:
    name: str
    args: list[str]
    expect: str = "error"  # "error": a coded error, exit 2; "ok": exit 0
    json_out: bool = False  # a --json run: its answer must reach stdout when it exits 0
    must_not_exist: list[str] = field(default_factory=list)  # paths the command must not create
    what: str = ""


def _people_kb(work: Path, py: list[str], env: dict[str, str]) -> Path:
    people = {
        "Q76": ("Barack Obama", "44th president of the United States", "obama.jpg"),
        "Q6279": ("Joe Biden", "46th president of the United States", "biden.jpg"),
    }
    src = work / "people.jsonl"
    with open(src, "w", encoding="utf-8") as fh:
        for qid, (label, desc, photo) in people.items():
            fh.write(json.dumps({"id": qid, "label": label, "description": desc, "types": ["Q5"],
                                 "images": [str(PHOTOS / photo)]}) + "\n")
    kb = work / "kb"
    subprocess.run([*py, "kb", "build", str(src), "--out", str(kb), "--json"], env=env, check=True,
                   capture_output=True, timeout=600)
    return kb


def fixtures(work: Path, py: list[str], env: dict[str, str]) -> dict[str, Path]:
    """Write every bad input the probes use into ``work``; return them by name."""
    import numpy as np
    from PIL import Image

    f: dict[str, Path] = {}
    photo = PHOTOS / "obama_and_biden.jpg"
    f["photo"] = photo
    f["kb"] = _people_kb(work, py, env)
    raw = photo.read_bytes()
    (work / "truncated.jpg").write_bytes(raw[: len(raw) // 3])
    f["truncated_jpg"] = work / "truncated.jpg"
    (work / "noise.jpg").write_bytes(os.urandom(4096))
    f["noise_jpg"] = work / "noise.jpg"
    (work / "empty.png").write_bytes(b"")
    f["empty_png"] = work / "empty.png"
    ramp = (np.arange(64 * 96, dtype=np.uint32).reshape(64, 96) * 10 % 65536).astype(np.uint16)
    Image.fromarray(ramp).save(work / "gray16.png")  # mode I;16
    f["gray16_png"] = work / "gray16.png"
    # a PNG whose header claims 100000 x 100000 pixels (a decompression bomb) with one tiny IDAT
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    (work / "huge_header.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                           + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    f["huge_header_png"] = work / "huge_header.png"
    Image.new("L", (10, 10), 255).save(work / "small_mask.png")
    f["small_mask"] = work / "small_mask.png"
    # dumps
    good = [{"id": f"Q{i}", "label": f"Entity {i}", "description": "a thing"} for i in range(1, 200)]
    text = "".join(json.dumps(r) + "\n" for r in good)
    (work / "trunc.jsonl").write_text(text[: len(text) // 2 + 7], encoding="utf-8")
    f["trunc_jsonl"] = work / "trunc.jsonl"
    wd = "[\n" + ",\n".join(json.dumps({"type": "item", "id": f"Q{i}", "labels": {"en": {"language": "en", "value": f"E{i}"}}})
                            for i in range(1, 200)) + "\n]\n"
    (work / "trunc_wikidata.json").write_text(wd[: len(wd) // 2], encoding="utf-8")
    f["trunc_wikidata"] = work / "trunc_wikidata.json"
    gz = gzip.compress(wd.encode())
    (work / "trunc_wikidata.json.gz").write_bytes(gz[: len(gz) // 2])
    f["trunc_gz"] = work / "trunc_wikidata.json.gz"
    latin = "".join(json.dumps({"id": f"Q{i}", "label": f"Caf\u00e9 {i}"}, ensure_ascii=False) + "\n" for i in range(1, 20))
    (work / "latin1.jsonl").write_bytes(latin.encode("latin-1"))
    f["latin1_jsonl"] = work / "latin1.jsonl"
    (work / "utf16.jsonl").write_bytes(latin.encode("utf-16"))
    f["utf16_jsonl"] = work / "utf16.jsonl"
    (work / "binary.jsonl").write_bytes(os.urandom(2048))
    f["binary_jsonl"] = work / "binary.jsonl"
    # CoNLL
    conll = "IMGID:1\nObama\tB-PER\nvisits\tO\nParis\tB-LOC\n\n"
    (work / "latin1.txt").write_bytes(("IMGID:2\nCaf\u00e9\tB-ORG\n\n" + conll).encode("latin-1"))
    f["latin1_conll"] = work / "latin1.txt"
    (work / "binary.txt").write_bytes(os.urandom(2048))
    f["binary_conll"] = work / "binary.txt"
    with open(work / "mentions.jsonl", "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"image": str(photo), "box": [1110, 360, 1380, 645], "gold": "Q76"}) + "\n")
    f["mentions"] = work / "mentions.jsonl"
    (work / "dev.txt").write_text(conll, encoding="utf-8")
    f["utf8_conll"] = work / "dev.txt"
    # configs
    cfgs = {"fast": '{"segment": false, "signals": ["lexical"]}', "bad_json": '{"segment": false,', "not_object": "[1, 2]",
            "unknown_key": '{"segmnet": false}', "wrong_type": '{"recall_k": "many"}',
            "wrong_list": '{"signals": "face"}', "bad_value": '{"mode": "magic"}', "latin1": None}
    for name, body in cfgs.items():
        p = work / f"cfg_{name}.json"
        if body is None:
            p.write_bytes('{"extra": {"n": "caf\u00e9"}}'.encode("latin-1"))
        else:
            p.write_text(body, encoding="utf-8")
        f[f"cfg_{name}"] = p
    # a directory that is not a KB
    notkb = work / "not_a_kb"
    notkb.mkdir()
    (notkb / "notes.txt").write_text("my notes\n")
    f["not_a_kb"] = notkb
    return f


def probes(f: dict[str, Path], work: Path) -> list[Probe]:
    kb, photo, fast = str(f["kb"]), str(f["photo"]), str(f["cfg_fast"])
    link = ["link", photo, "--kb", kb, "--profile", "offline", "--config", fast]
    long_text = " ".join(["Barack Obama met Joe Biden in Washington ."] * 2500)  # 20,000 tokens
    missing = str(work / "missing")
    return [
        # images
        Probe("image: missing file", ["link", missing + ".jpg", "--kb", kb, "--box", OBAMA_BOX]),
        Probe("image: truncated JPEG", [*link[:1], str(f["truncated_jpg"]), *link[2:], "--box", "10,10,50,50", "--json"],
              expect="any", json_out=True, what="a coded refusal, or the decodable top part linked"),
        Probe("image: random bytes", [*link[:1], str(f["noise_jpg"]), *link[2:], "--box", "10,10,50,50"]),
        Probe("image: empty file", [*link[:1], str(f["empty_png"]), *link[2:], "--box", "10,10,50,50"]),
        Probe("image: 16-bit grey PNG", [*link[:1], str(f["gray16_png"]), *link[2:], "--box", "10,10,50,50", "--json"],
              expect="ok", json_out=True, what="16-bit pixels must be scaled to 8 bits, not clipped"),
        Probe("image: huge header (100000x100000 PNG)", [*link[:1], str(f["huge_header_png"]), *link[2:], "--box", "10,10,50,50"]),
        Probe("image: a directory", [*link[:1], str(work), *link[2:], "--box", "10,10,50,50"]),
        # boxes and prompts
        Probe("box: negative coordinates", [*link, "--box", "-50,-50,100,100", "--json"], expect="any", json_out=True,
              what="partly outside: clipped, or refused with a code"),
        Probe("box: zero area", [*link, "--box", "100,100,100,100"]),
        Probe("box: outside the image", [*link, "--box", "5000,5000,5100,5100"]),
        Probe("box: NaN", [*link, "--box", "nan,10,50,50"]),
        Probe("box: inf", [*link, "--box", "10,10,inf,50"]),
        Probe("box: three numbers", [*link, "--box", "10,10,50"]),
        Probe("box: not numbers", [*link, "--box", "a,b,c,d"]),
        Probe("box: x2 < x1", [*link, "--box", "100,10,50,50"]),
        Probe("point: outside the image", [*link, "--point", "99999,5"]),
        Probe("box and point together", [*link, "--box", "10,10,50,50", "--point", "20,20"]),
        Probe("mask: missing file", [*link, "--mask", missing + ".png"]),
        Probe("mask: wrong size", [*link, "--mask", str(f["small_mask"])]),
        Probe("mask: random bytes", [*link, "--mask", str(f["noise_jpg"])]),
        Probe("-k 0", [*link, "--box", OBAMA_BOX, "-k", "0"]),
        # KB
        Probe("kb: missing directory", ["link", photo, "--kb", missing, "--box", OBAMA_BOX]),
        Probe("kb: a directory that is not a KB", ["link", photo, "--kb", str(f["not_a_kb"]), "--box", OBAMA_BOX]),
        Probe("kb info: not a KB", ["kb", "info", str(f["not_a_kb"])]),
        Probe("kb embed: not a KB", ["kb", "embed", str(f["not_a_kb"]), "--profile", "offline"]),
        Probe("kb embed: unknown signal", ["kb", "embed", kb, "--signals", "dense_text,telepathy", "--profile", "offline"]),
        Probe("kb build: into a non-KB directory", ["kb", "build", str(work / "people.jsonl"), "--out", str(f["not_a_kb"])],
              what="a directory holding other files must not be overwritten or mixed with a KB"),
        Probe("kb build: truncated JSONL", ["kb", "build", str(f["trunc_jsonl"]), "--out", str(work / "kb_trunc"), "--json"],
              expect="ok", json_out=True, what="records before the cut imported, the cut reported"),
        Probe("kb build: truncated Wikidata dump", ["kb", "build", f"wikidata:{f['trunc_wikidata']}", "--out",
                                                    str(work / "kb_trunc_wd"), "--json"], expect="ok", json_out=True),
        Probe("kb build: truncated .json.gz", ["kb", "build", f"wikidata:{f['trunc_gz']}", "--out", str(work / "kb_trunc_gz"),
                                               "--json"], expect="ok", json_out=True),
        Probe("kb build: latin-1 JSONL", ["kb", "build", str(f["latin1_jsonl"]), "--out", str(work / "kb_latin1"), "--json"],
              expect="any", json_out=True, what="either imported with the bad bytes reported, or a coded error"),
        Probe("kb build: UTF-16 JSONL", ["kb", "build", str(f["utf16_jsonl"]), "--out", str(work / "kb_utf16"), "--json"],
              expect="any", json_out=True),
        Probe("kb build: random bytes", ["kb", "build", f"jsonl:{f['binary_jsonl']}", "--out", str(work / "kb_binary")],
              expect="any"),
        Probe("kb build: missing source", ["kb", "build", missing + ".jsonl", "--out", str(work / "kb_missing")],
              must_not_exist=[str(work / "kb_missing")]),
        Probe("kb build: --out under a missing directory", ["kb", "build", str(work / "people.jsonl"), "--out",
                                                            str(work / "no" / "such" / "kb")],
              must_not_exist=[str(work / "no")], what="the named folder may be made, the ones above it not"),
        # --config
        Probe("config: missing file", [*link[:6], "--config", missing + ".json", "--box", OBAMA_BOX]),
        Probe("config: bad JSON", [*link[:6], "--config", str(f["cfg_bad_json"]), "--box", OBAMA_BOX]),
        Probe("config: not an object", [*link[:6], "--config", str(f["cfg_not_object"]), "--box", OBAMA_BOX]),
        Probe("config: unknown key", [*link[:6], "--config", str(f["cfg_unknown_key"]), "--box", OBAMA_BOX]),
        Probe("config: wrong type", [*link[:6], "--config", str(f["cfg_wrong_type"]), "--box", OBAMA_BOX]),
        Probe("config: string for a list", [*link[:6], "--config", str(f["cfg_wrong_list"]), "--box", OBAMA_BOX]),
        Probe("config: bad value", [*link[:6], "--config", str(f["cfg_bad_value"]), "--box", OBAMA_BOX]),
        Probe("config: not UTF-8", [*link[:6], "--config", str(f["cfg_latin1"]), "--box", OBAMA_BOX]),
        Probe("config: a directory", [*link[:6], "--config", str(work), "--box", OBAMA_BOX]),
        # --overlay
        Probe("overlay: unknown extension", [*link, "--box", OBAMA_BOX, "--overlay", str(work / "o.xyz"), "--json"],
              json_out=True),
        Probe("overlay: no extension", [*link, "--box", OBAMA_BOX, "--overlay", str(work / "overlay"), "--json"],
              json_out=True),
        Probe("overlay: missing parent directory", [*link, "--box", OBAMA_BOX, "--overlay",
                                                    str(work / "nodir" / "deeper" / "o.png"), "--json"],
              json_out=True, must_not_exist=[str(work / "nodir")]),
        Probe("overlay: a directory", [*link, "--box", OBAMA_BOX, "--overlay", str(work), "--json"], json_out=True),
        Probe("overlay: .webp", [*link, "--box", OBAMA_BOX, "--overlay", str(work / "o.webp"), "--json"], expect="ok",
              json_out=True),
        Probe("gmner overlay: unknown extension", ["gmner", photo, "--text", "Obama", "--profile", "offline",
                                                   "--overlay", str(work / "g.xyz"), "--json"], json_out=True),
        Probe("gmner --riveg: missing directory", ["gmner", photo, "--text", "Obama", "--profile", "offline",
                                                   "--riveg", str(work / "nodir2" / "r.txt")],
              must_not_exist=[str(work / "nodir2")]),
        # texts
        Probe("ner tag: 20,000-token text", ["ner", "tag", long_text, "--profile", "offline", "--json"], expect="ok",
              json_out=True),
        Probe("ner tag: empty text", ["ner", "tag", "", "--profile", "offline", "--json"], expect="any", json_out=True),
        Probe("ner tag: --weights missing", ["ner", "tag", "Obama", "--weights", missing]),
        Probe("gmner: 20,000-token text", ["gmner", photo, "--text", long_text, "--profile", "offline", "--no-masks",
                                          "--expansion", "template", "--json"], expect="ok", json_out=True,
              what="the post is cut to max_tokens with a note"),
        Probe("gmner: bad --scheme", ["gmner", photo, "--text", "Obama", "--scheme", "WHAT"]),
        Probe("gmner: bad --expansion", ["gmner", photo, "--text", "Obama", "--expansion", "magic"]),
        # eval / ner files
        Probe("ner tag-conll: missing file", ["ner", "tag-conll", missing + ".txt"]),
        Probe("ner tag-conll: latin-1 file", ["ner", "tag-conll", str(f["latin1_conll"]), "--profile", "offline",
                                             "--backend", "spacy_sm", "--json"], expect="any", json_out=True),
        Probe("ner tag-conll: random bytes", ["ner", "tag-conll", str(f["binary_conll"]), "--backend", "spacy_sm"]),
        Probe("eval check: random bytes", ["eval", "check", str(f["binary_conll"]), "--format", "conll"]),
        Probe("eval check: missing file", ["eval", "check", missing + ".txt"]),
        Probe("eval link: missing KB", ["eval", "link", str(f["mentions"]), "--kb", missing, "--out", str(work / "r1")]),
        Probe("eval link: missing images folder", ["eval", "link", str(f["mentions"]), "--kb", kb, "--images", missing,
                                                   "--out", str(work / "r2")]),
        Probe("eval gmner: missing images folder", ["eval", "gmner", str(f["utf8_conll"]), "--images", missing,
                                                    "--out", str(work / "r3")]),
        Probe("eval gmner: missing masks file", ["eval", "gmner", str(f["utf8_conll"]), "--images", str(work),
                                                 "--masks", missing + ".jsonl", "--out", str(work / "r4")]),
        Probe("eval ner: --out under a missing directory", ["eval", "ner", str(f["utf8_conll"]), "--out",
                                                            str(work / "nodir3" / "run")],
              must_not_exist=[str(work / "nodir3")]),
        Probe("models tiny: OUT_DIR under a missing directory", ["models", "tiny", str(work / "nodir4" / "deeper" / "t"),
                                                                  "--arch", "clip"], must_not_exist=[str(work / "nodir4")]),
    ]


def run(probe: Probe, py: list[str], env: dict[str, str], timeout: float) -> dict:
    t0 = time.perf_counter()
    row: dict = {"probe": probe.name, "command": ["pixlink", *probe.args][:12], "expect": probe.expect}
    existed = {p: Path(p).exists() for p in probe.must_not_exist}
    try:
        proc = subprocess.run([*py, *probe.args], env=env, capture_output=True, text=True, timeout=timeout,
                              errors="replace")
        row["exit"] = proc.returncode
        out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        row["exit"] = "timeout"
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    row["seconds"] = round(time.perf_counter() - t0, 1)
    m = ERROR_CODE.search(err) or CODE.search(err)  # the error line's code, else the first one seen
    row["code"] = m.group(1) if m else ("usage" if row["exit"] == 2 and any(u in err for u in USAGE) else None)
    row["traceback"] = "Traceback (most recent call last)" in err
    lost = []
    if probe.json_out and row["exit"] == 0:
        try:
            json.loads(out)
        except json.JSONDecodeError:
            lost.append("answer lost (no JSON on stdout)")
    if probe.json_out and row["exit"] != 0 and row["exit"] != "timeout" and row["code"] is None:
        lost.append("answer lost (failed without a coded error)")
    for p, was in existed.items():
        if not was and Path(p).exists():
            lost.append(f"created {p}")
    row["lost"] = "; ".join(lost)
    last = [ln for ln in err.strip().splitlines() if ln.strip()]
    row["stderr_tail"] = last[-1][:300] if last else ""
    verdict = []
    if row["exit"] == "timeout":
        verdict.append("timeout")
    if row["traceback"]:
        verdict.append("traceback")
    if lost:
        verdict.append("lost/created")
    if probe.expect == "error" and row["exit"] != "timeout" and not (row["exit"] == 2 and row["code"]):
        verdict.append("no coded error" if row["exit"] != 0 else "accepted bad input")
    if probe.expect == "ok" and row["exit"] not in (0, "timeout"):
        verdict.append("refused usable input")
    if probe.expect == "any" and row["exit"] not in (0, 2, "timeout"):
        verdict.append(f"exit {row['exit']}")
    row["verdict"] = ", ".join(verdict) or "ok"
    if probe.what:
        row["what"] = probe.what
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="run the probes whose name contains this (case-insensitive)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per probe")
    ap.add_argument("--keep", action="store_true", help="keep the fixtures' temporary directory")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "probe_cli.json")
    args = ap.parse_args()
    if not PHOTOS.is_dir():
        print(f"shared photos not found at {PHOTOS}: set PIXLINK_DATA", file=sys.stderr)
        return 1
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200"}
    py = [sys.executable, "-m", "pixlink.cli.main"]
    work = Path(tempfile.mkdtemp(prefix="pixlink-probe-"))
    try:
        f = fixtures(work, py, env)
        todo = [p for p in probes(f, work) if args.only.lower() in p.name.lower()]
        rows = []
        for i, p in enumerate(todo, 1):
            print(f"[{i}/{len(todo)}] {p.name} ...", file=sys.stderr, flush=True)
            rows.append(run(p, py, env, args.timeout))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"fixtures kept in {work}", file=sys.stderr)
    w = max(len(r["probe"]) for r in rows) if rows else 10
    print(f"{'probe':{w}}  {'exit':>7}  {'code':5}  {'tb':3}  {'s':>6}  {'verdict':28}  lost / created")
    for r in rows:
        print(f"{r['probe']:{w}}  {str(r['exit']):>7}  {r['code'] or '-':5}  {'yes' if r['traceback'] else 'no':3}  "
              f"{r['seconds']:6.1f}  {r['verdict']:28}  {r['lost']}")
    bad = [r for r in rows if r["verdict"] != "ok"]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} probes ok; {sum(r['traceback'] for r in rows)} tracebacks")
    res = {"python": sys.version.split()[0], "cwd_pythonpath": os.environ.get("PYTHONPATH", ""), "timeout_s": args.timeout,
           "n": len(rows), "n_ok": len(rows) - len(bad), "probes": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
