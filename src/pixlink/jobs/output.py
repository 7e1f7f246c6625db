"""A job's output directory: its layout, the lock, the done-id set, part files, the error table
and the summary.

::

    OUT/
      job.json           the JobSpec and the manifest it reads (a restart must match it)
      todo-<run>.parquet the items this run does (id, line, item JSON): what the engines read
      parts/*.parquet    one row per item done: id, ok, code, error, result (JSON), seconds,
                         worker, run, and the task's flat columns; written atomically by the
                         local engine (tmp + rename) and by Ray Data's write on the Ray engine
      results.jsonl      (--jsonl) every row of the parts as JSON lines, rebuilt at the end
      errors.parquet     the per-item error table: manifest errors (no id, repeated id, not
      errors.jsonl       JSON) and items that failed (id, line, stage, code, error)
      summary.json       counts, throughput, the run's figures and notes
      .lock              host and pid of the job writing here

Resume: the ids in the readable part files are done; a part file cut short by a kill (no
Parquet footer) is deleted at the start of the next run and its items are done again, so a
killed job restarted with the same OUT misses no id and writes none twice. Failed items are
done too (their row holds the error): they are not retried.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..errors import Errors, InputError
from ..log import get_logger
from .spec import JobSpec
from .tasks import Outcome, get_task, result_json

log = get_logger("pixlink.jobs")

BASE_COLUMNS = (("id", "string"), ("ok", "bool"), ("code", "string"), ("error", "string"), ("result", "string"),
                ("seconds", "float64"), ("worker", "string"), ("run", "string"))


def arrow_type(name: str) -> Any:
    import pyarrow as pa

    return {"string": pa.string(), "bool": pa.bool_(), "float64": pa.float64(), "int32": pa.int32(),
            "list<float32>": pa.list_(pa.float32())}[name]


def part_schema(task: str) -> Any:
    """The Arrow schema of a task's part files."""
    import pyarrow as pa

    cols = BASE_COLUMNS + get_task(task).columns
    return pa.schema([pa.field(n, arrow_type(t)) for n, t in cols])


def outcomes_table(task: str, outcomes: Sequence[Outcome], run: str) -> Any:
    """A part-file table of ``outcomes`` (schema :func:`part_schema`)."""
    import pyarrow as pa

    schema = part_schema(task)
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    flat_names = [n for n, _ in get_task(task).columns]
    for o in outcomes:
        cols["id"].append(o.id)
        cols["ok"].append(o.ok)
        cols["code"].append(o.code)
        cols["error"].append(o.error)
        cols["result"].append(result_json(o.result))
        cols["seconds"].append(round(float(o.seconds), 6))
        cols["worker"].append(o.worker or worker_name())
        cols["run"].append(run)
        for n in flat_names:
            cols[n].append(o.flat.get(n))
    return pa.table(cols, schema=schema)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


class JobDir:
    """The output directory of one job (see the module docstring)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.parts = self.out / "parts"
        self._locked = False

    # -- the lock --------------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.out / ".lock"

    def acquire(self) -> list[str]:
        """Take the lock (E755 when a live job holds it); return notes (a stale lock taken over)."""
        self.out.mkdir(parents=True, exist_ok=True)
        notes = []
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    held = json.loads(self.lock_path.read_text() or "{}")
                except (OSError, ValueError):
                    held = {}
                host, pid = held.get("host"), int(held.get("pid") or 0)
                if host == me["host"] and pid and not _alive(pid):
                    notes.append(f"took over the lock of process {pid}, which is gone (a killed run)")
                    self.lock_path.unlink(missing_ok=True)
                    continue
                raise InputError(Errors.E755.format(out=str(self.out), pid=pid or "?", host=host or "?")) from None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self._locked = True
            return notes
        raise InputError(Errors.E755.format(out=str(self.out), pid="?", host="?"))

    def release(self) -> None:
        if self._locked:
            self.lock_path.unlink(missing_ok=True)
            self._locked = False

    # -- job.json --------------------------------------------------------------------------
    def check_job(self, spec: JobSpec, manifest: str | None) -> bool:
        """Write job.json for a new job, or check that it describes this one (E754).
        Returns True when the directory already held this job (a resume)."""
        path = self.out / "job.json"
        mine = {"spec": spec.to_dict(), "manifest": manifest}
        if path.is_file():
            try:
                held = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(Errors.E759.format(out=str(self.out), reason=f"job.json cannot be read ({exc})")) from exc
            if held.get("spec", {}).get("task") != spec.task:
                raise InputError(Errors.E754.format(out=str(self.out), reason=f"task {held.get('spec', {}).get('task')!r}"))
            if held.get("spec") != mine["spec"]:
                raise InputError(Errors.E754.format(out=str(self.out), reason="other task options"))
            if held.get("manifest") != manifest:
                raise InputError(Errors.E754.format(out=str(self.out), reason=f"manifest {held.get('manifest')!r}"))
            return True
        if self.parts.is_dir() and any(self.parts.glob("*.parquet")):
            raise InputError(Errors.E759.format(out=str(self.out), reason="it holds part files but no job.json"))
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(mine | {"created": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2) + "\n")
        os.replace(tmp, path)
        return False

    # -- parts -----------------------------------------------------------------------------
    def part_files(self) -> list[Path]:
        return sorted(p for p in self.parts.glob("*.parquet") if not p.name.startswith("."))

    def sweep(self) -> list[str]:
        """Delete part files a kill cut short (unreadable) and leftovers of atomic writes;
        return notes. Run with the lock held, before reading the done set."""
        import pyarrow.parquet as pq

        notes = []
        if not self.parts.is_dir():
            return notes
        for p in self.parts.glob(".*"):
            if p.is_file():
                p.unlink()
        for p in self.part_files():
            try:
                pq.read_metadata(p)
            except (OSError, ValueError) as exc:  # pyarrow: ArrowInvalid (ValueError) / OSError
                log.warning("deleting %s: it was cut short (%s); its items are done again", p.name, exc)
                notes.append(f"deleted part file {p.name}: it was cut short by a stopped run; its items are done again")
                p.unlink()
        return notes

    def iter_parts(self, columns: Sequence[str] | None = None) -> Iterator[Any]:
        """Each part file as an Arrow table (``columns`` only)."""
        import pyarrow.parquet as pq

        for p in self.part_files():
            yield pq.read_table(p, columns=list(columns) if columns else None)

    def done_ids(self) -> set[str]:
        done: set[str] = set()
        for t in self.iter_parts(["id"]):
            done.update(t.column("id").to_pylist())
        return done

    def write_part(self, table: Any, run: str, seq: int) -> Path:
        """Write one part file atomically (tmp + fsync + rename)."""
        import pyarrow.parquet as pq

        self.parts.mkdir(parents=True, exist_ok=True)
        final = self.parts / f"part-{run}-{seq:06d}.parquet"
        tmp = self.parts / f".{final.name}.tmp"
        pq.write_table(table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    # -- the end of a run ------------------------------------------------------------------
    def finalize(self, manifest_errors: Iterable[dict[str, Any]], lines: dict[str, int], jsonl: bool) -> dict[str, Any]:
        """Write the error table (and results.jsonl on request) from the parts; return counts:
        rows, ok, failed, duplicate ids across parts (0 unless something went wrong)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        errors = [dict(e) for e in manifest_errors]
        seen: set[str] = set()
        dup = ok = bad = 0
        jsonl_tmp = self.out / ".results.jsonl.tmp"
        fh = open(jsonl_tmp, "wb") if jsonl else None
        try:
            for t in self.iter_parts():
                rows = t.to_pylist()
                for r in rows:
                    if r["id"] in seen:
                        dup += 1
                    seen.add(r["id"])
                    if r["ok"]:
                        ok += 1
                    else:
                        bad += 1
                        errors.append({"id": r["id"], "line": lines.get(r["id"]), "stage": "item", "code": r["code"],
                                       "error": r["error"]})
                    if fh is not None:
                        from ..io import dumps

                        rec = dict(r)
                        rec["result"] = json.loads(r["result"]) if r["result"] is not None else None
                        fh.write(dumps(rec).encode() + b"\n")
        finally:
            if fh is not None:
                fh.close()
                os.replace(jsonl_tmp, self.out / "results.jsonl")
        errors.sort(key=lambda e: (e.get("line") is None, e.get("line") or 0, str(e.get("id"))))
        schema = pa.schema([("id", pa.string()), ("line", pa.int64()), ("stage", pa.string()), ("code", pa.string()),
                            ("error", pa.string())])
        table = pa.table({n: [e.get(n) for e in errors] for n in schema.names}, schema=schema)
        tmp = self.out / ".errors.parquet.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self.out / "errors.parquet")
        from ..io import write_jsonl

        write_jsonl(self.out / ".errors.jsonl.tmp", errors)
        os.replace(self.out / ".errors.jsonl.tmp", self.out / "errors.jsonl")
        return {"rows": len(seen) + dup, "ids": len(seen), "ok": ok, "failed": bad, "duplicates": dup, "ids_done": seen}

    def write_summary(self, summary: dict[str, Any]) -> Path:
        from ..io import dumps

        path = self.out / "summary.json"
        tmp = self.out / ".summary.json.tmp"
        tmp.write_text(dumps(summary, indent=True) + "\n")
        os.replace(tmp, path)
        return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
