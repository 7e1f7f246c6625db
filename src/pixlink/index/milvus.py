"""A Milvus backend behind the dense-index interface, for KBs and traffic that outgrow one machine.

The vectors of one (space, model) of a KB live in one Milvus collection; the KB directory keeps
only a record of it at the usual place, ``KBDIR/vectors/<space>/<model-slug>/meta.json``, with
``"backend": "milvus"`` and ``params`` naming the URI and the collection. The linker reads the
record and opens :class:`MilvusIndex` where it would open a FAISS :class:`~pixlink.index.dense.DenseIndex`
(:mod:`pixlink.link.vectors`); both answer :meth:`search`, :meth:`search_subset`,
:meth:`contains`, :meth:`vectors_of` the same way.

One client for every deployment (pymilvus' ``MilvusClient``):

* **Milvus Lite**: ``uri`` is a local path (``./kb_vectors.db``; Lite keeps a folder there) —
  for tests and small KBs. One process at a time can open a Lite database (a second gets
  "Open local milvus failed"), so a job with several workers needs a server.
* **A Milvus server or cluster**: ``uri="http://host:19530"``; the token (``user:password``
  or an API key) is given at build time and, to open, in ``PIXLINK_MILVUS_TOKEN`` — it is
  never written to the KB directory.

The collection: ``key`` (VARCHAR primary key: the entity id, and ``<entity id>\\t<n>`` for the
further vectors of an entity that has several), ``entity``
(VARCHAR, the entity id), ``vector`` (FLOAT_VECTOR). Its properties hold the pixlink format,
the model id, the space, the metric and the KB build id, checked when the index is opened.
Cosine vectors are L2-normalised and searched with ``IP``; ``l2`` scores are minus Milvus'
squared distance, as in the FAISS backends.

Index types are options: ``index_type`` (``AUTO`` = ``FLAT`` on Lite, ``HNSW`` on a server;
``FLAT``, ``IVF_FLAT``, ``IVF_PQ``, ``HNSW``, ``DISKANN``...), ``index_params`` (``{"M": 16,
"efConstruction": 200}``, ``{"nlist": 1024, "m": 16}``) and ``search_params`` (``{"ef": 128}``,
``{"nprobe": 16}``). Search takes ``k`` distinct entities (Milvus' grouping search on
``entity`` when an entity has several vectors); :meth:`search_subset` fetches the candidates'
vectors and scores them exactly here, as the FAISS backends do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..errors import Errors, IndexError_, InputError
from ..log import get_logger
from .dense.base import IndexRecord, candidates_per_query, check_expected, check_queries, padded, swap_in
from .dense.layout import FORMAT_VERSION, check_build_id, check_space
from .dense.store import check_rows

log = get_logger(__name__)

BACKEND = "milvus"
TOKEN_ENV = "PIXLINK_MILVUS_TOKEN"
METRIC_TYPES = {"cosine": "IP", "ip": "IP", "l2": "L2"}
MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""Rows per insert are chosen to keep a request under this (Milvus refuses requests over 64 MB)."""
MAX_LIMIT = 16_384
"""Milvus' largest ``limit`` (top-k) of one search."""
_FILTER_GROUP = 512
MAX_KEYS_PER_ENTITY = 64
"""Up to this many vectors per entity, an entity's rows are fetched by primary key."""


def _client_class() -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise IndexError_(Errors.E270.format(reason=f"pymilvus is not installed ({exc})")) from exc
    return MilvusClient


def _milvus_errors() -> tuple[type[BaseException], ...]:
    from pymilvus.exceptions import MilvusException

    return (MilvusException,)


def is_lite(uri: str) -> bool:
    """A Milvus Lite database (a local path) rather than a server URI."""
    return "://" not in uri


def normalise_uri(uri: str) -> str:
    """A Lite path made absolute (the record must work from any working directory)."""
    if not isinstance(uri, str) or not uri.strip():
        raise InputError(Errors.E274.format(name="uri", value=uri, reason="a Milvus URI or a Milvus Lite file path"))
    return str(Path(uri).expanduser().resolve()) if is_lite(uri) else uri


def connect(uri: str, token: str | None = None) -> Any:
    """A ``MilvusClient`` for ``uri`` (E270 without pymilvus, E271 when it cannot connect)."""
    cls = _client_class()
    kw: dict[str, Any] = {}
    tok = token if token is not None else os.environ.get(TOKEN_ENV)
    if tok and not is_lite(uri):
        kw["token"] = tok
    try:
        return cls(uri, **kw)
    except _milvus_errors() as exc:
        hint = " (a Milvus Lite database can be open in one process at a time)" if is_lite(uri) else ""
        raise IndexError_(Errors.E271.format(uri=uri, reason=f"{exc}{hint}")) from exc
    except (OSError, RuntimeError, ValueError) as exc:
        raise IndexError_(Errors.E271.format(uri=uri, reason=str(exc))) from exc


def default_collection(kb_name: str, space: str, model_id: str) -> str:
    """``pixlink_<kb>_<space>_<8 hex of the model id>`` (letters, digits and _ only)."""
    kb = re.sub(r"[^A-Za-z0-9_]+", "_", kb_name).strip("_")[:60] or "kb"
    return f"pixlink_{kb}_{space}_{hashlib.sha1(model_id.encode('utf-8')).hexdigest()[:8]}"


def unique_keys(ids: Sequence[str]) -> list[str]:
    """A primary key per row: the entity id, then ``<id>\\t<n>`` for an entity's later rows."""
    seen: Counter[str] = Counter()
    out = []
    for e in ids:
        n = seen[e]
        out.append(e if n == 0 else f"{e}\t{n}")
        seen[e] += 1
    return out


def _quoted(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


class MilvusIndex(IndexRecord):
    """A dense index whose vectors are in a Milvus collection (see the module docstring).

    Attributes (as :class:`~pixlink.index.dense.DenseIndex`): ``path`` (the record's
    directory), ``model_id``, ``space``, ``kb_build_id``, ``dim``, ``metric``, ``backend``
    (``"milvus"``), ``params`` (uri, collection, index_type, index_params, search_params),
    ``device`` (``"milvus"``), ``notes``, ``meta``. ``len(index)`` is the vector count,
    :attr:`n_entities` the distinct entities.

    Thread safety: one opened index may be shared by threads (the client is a gRPC channel;
    calls keep no state between them)."""

    backend = BACKEND
    approximate = True

    def __init__(self, path: Path, meta: dict[str, Any], client: Any) -> None:
        super().__init__(path, meta)
        self.uri: str = self.params["uri"]
        self.collection: str = self.params["collection"]
        self.device = "milvus"
        self._client = client
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"MilvusIndex({self.collection!r} at {self.uri!r}, model_id={self.model_id!r}, space={self.space!r}, "
                f"dim={self.dim}, vectors={self._count}, entities={self._n_entities}, metric={self.metric!r})")

    # -- building --------------------------------------------------------------------------
    @classmethod
    def build(
        cls, out_dir: str | Path, chunks: Iterable[tuple[Sequence[str], np.ndarray]] | Iterable[np.ndarray],
        keys: Sequence[str] | None, ids: Sequence[str], *, uri: str, model_id: str, space: str,
        metric: str = "cosine", kb_build_id: str | None = None, token: str | None = None,
        collection: str | None = None, index_type: str = "AUTO", index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None, progress: bool = True,
    ) -> "MilvusIndex":
        """Load vectors into a (new) collection and write the record at ``out_dir``.

        Args:
            out_dir: the record's directory (``index_dir(KBDIR, space, model_id)``); replaced
                atomically, like a FAISS index.
            chunks: ``(n_i, D)`` arrays, or ``(keys_i, (n_i, D))`` pairs, in row order.
            keys: the items' own keys (an embed job's ``"Q76\t<image>"``), checked to be one per row;
                the primary keys are always :func:`unique_keys` of ``ids`` (the entity id, then
                ``<id>\t<n>``), so that an entity's rows are found by key.
            ids: the entity id of each row.
            uri: a Milvus server URI or a Milvus Lite path.
            collection: default :func:`default_collection` (the KB directory's name). An
                existing collection of that name is dropped first.
            index_type, index_params, search_params: see the module docstring.
        """
        check_space(space)
        check_build_id(kb_build_id)
        if metric not in METRIC_TYPES:
            raise InputError(Errors.E226.format(metric=metric, metrics=", ".join(METRIC_TYPES)))
        ids = list(ids)
        if keys is not None and len(list(keys)) != len(ids):
            raise InputError(Errors.E228.format(n_ids=len(ids), n_vectors=f"{len(list(keys))} keys and"))
        keys = unique_keys(ids)
        if not ids:
            raise InputError(Errors.E277.format(what=f"{space} of {model_id}", reason="no vectors were given"))
        for e in ids:
            if not isinstance(e, str) or not e or "\t" in e or len(e.encode("utf-8")) > 65_000:
                raise InputError(Errors.E276.format(key=e, reason="entity ids are non-empty strings without tabs, "
                                                           "of at most 65,000 bytes"))
        uri = normalise_uri(uri)
        out = Path(out_dir)
        kb_dir = out.parent.parent.parent
        name = collection or default_collection(kb_dir.name, space, model_id)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", name):
            raise InputError(Errors.E274.format(name="collection", value=name, reason="letters, digits and _, "
                                                "starting with a letter or _, at most 255"))
        kind = str(index_type).upper()
        if kind == "AUTO":
            kind = "FLAT" if is_lite(uri) else "HNSW"
        iparams = dict(index_params or {})
        if kind == "HNSW" and not iparams:
            iparams = {"M": 16, "efConstruction": 200}
        sparams = dict(search_params or ({"ef": 128} if kind == "HNSW" else {}))
        client = connect(uri, token)
        from pymilvus import DataType

        key_len = max(len(k.encode("utf-8")) for k in keys)
        ent_len = max(len(e.encode("utf-8")) for e in ids)
        errs = _milvus_errors()
        from ..progress import progress as make_progress

        bar = make_progress(disable=not progress)
        try:
            if client.has_collection(name):
                client.drop_collection(name)
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=max(64, key_len))
            schema.add_field("entity", DataType.VARCHAR, max_length=max(64, ent_len))
            dim_known: int | None = None
            row = 0
            created = False
            bar.start()
            task = bar.add_task(f"loading Milvus collection {name}", total=len(ids), rate="")
            for chunk in chunks:
                vec = chunk[1] if isinstance(chunk, tuple) else chunk
                vec = np.asarray(vec, dtype=np.float32)
                if vec.ndim != 2 or vec.shape[1] == 0:
                    raise InputError(Errors.E235.format(shape=vec.shape, reason=f" (chunk at row {row})"))
                vec = check_rows(vec, row, metric)  # E224 for NaN / zero norm; normalised for cosine
                if dim_known is None:
                    dim_known = int(vec.shape[1])
                    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim_known)
                    ip = client.prepare_index_params()
                    ip.add_index(field_name="vector", index_type=kind, metric_type=METRIC_TYPES[metric], params=iparams)
                    props = {"pixlink.format": str(FORMAT_VERSION), "pixlink.model_id": model_id, "pixlink.space": space,
                             "pixlink.metric": metric, "pixlink.kb_build_id": kb_build_id or ""}
                    client.create_collection(name, schema=schema, index_params=ip, properties=props)
                    created = True
                elif vec.shape[1] != dim_known:
                    raise InputError(Errors.E235.format(shape=vec.shape, reason=f" (chunk at row {row} has D != {dim_known})"))
                if row + vec.shape[0] > len(ids):
                    raise InputError(Errors.E228.format(n_ids=len(ids), n_vectors=f"more than {len(ids)}"))
                per_request = max(1, MAX_REQUEST_BYTES // (dim_known * 4 + key_len + ent_len + 16))
                for s in range(0, vec.shape[0], per_request):
                    part = vec[s : s + per_request]
                    r0 = row + s
                    client.insert(name, [{"key": keys[r0 + j], "entity": ids[r0 + j], "vector": part[j].tolist()}
                                         for j in range(part.shape[0])])
                row += vec.shape[0]
                bar.advance(task, vec.shape[0])
            if row != len(ids) or not created:
                raise InputError(Errors.E228.format(n_ids=len(ids), n_vectors=row))
            client.flush(name)
            client.load_collection(name)
        except errs as exc:
            raise IndexError_(Errors.E275.format(collection=name, uri=uri, reason=str(exc))) from exc
        finally:
            bar.stop()
            client.close()
        counts = Counter(ids)
        meta = {
            "format_version": FORMAT_VERSION, "model_id": model_id, "space": space, "kb_build_id": kb_build_id,
            "dim": dim_known, "metric": metric, "count": len(ids), "entities": len(counts),
            "max_vectors_per_entity": max(counts.values()), "backend": BACKEND, "dtype": "float32",
            "params": {"uri": uri, "collection": name, "index_type": kind, "index_params": iparams,
                       "search_params": sparams, "lite": is_lite(uri)},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.building-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), "utf-8")
        swap_in(tmp, out)
        log.info("loaded %d vectors (%d entities) into Milvus collection %s at %s (%s)", len(ids), len(counts), name,
                 uri, kind)
        return cls.open(out, expect_model_id=model_id, token=token)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | Path, expect_model_id: str | None = None, *, expect_space: str | None = None,
        expect_kb_build_id: str | None = None, token: str | None = None,
    ) -> "MilvusIndex":
        """Open the Milvus index recorded at ``path`` and check it against the record and the
        caller's expectations (E222 model, E232 space, E250 KB build; E272 collection gone;
        E273 a collection made for another build or model)."""
        d = Path(path)
        try:
            meta = json.loads((d / "meta.json").read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexError_(Errors.E220.format(path=str(d), reason=f"meta.json cannot be read ({exc})")) from exc
        if meta.get("backend") != BACKEND:
            raise IndexError_(Errors.E221.format(path=str(d), reason=f"it is a {meta.get('backend')!r} index, not milvus"))
        check_expected(d, meta, expect_model_id, expect_space, expect_kb_build_id)
        params = meta.get("params") or {}
        uri, name = params.get("uri"), params.get("collection")
        client = connect(uri, token)
        try:
            if not client.has_collection(name):
                raise IndexError_(Errors.E272.format(path=str(d), collection=name, uri=uri, reason="does not exist"))
            props = client.describe_collection(name).get("properties", {}) or {}
            found = (props.get("pixlink.model_id"), props.get("pixlink.space"), props.get("pixlink.kb_build_id") or None)
            want = (meta["model_id"], meta["space"], meta.get("kb_build_id"))
            if found != want:
                raise IndexError_(Errors.E273.format(
                    collection=name, uri=uri, found=f"model {found[0]!r}, space {found[1]!r}, KB build {found[2]!r}",
                    expected=f"model {want[0]!r}, space {want[1]!r}, KB build {want[2]!r}"))
            stats = client.get_collection_stats(name)
            n = int(stats.get("row_count", -1))
            if n != int(meta["count"]):
                raise IndexError_(Errors.E272.format(path=str(d), collection=name, uri=uri,
                                                     reason=f"holds {n} vectors where the record says {meta['count']}"))
            client.load_collection(name)
        except _milvus_errors() as exc:
            client.close()
            raise IndexError_(Errors.E275.format(collection=name, uri=uri, reason=str(exc))) from exc
        except IndexError_:
            client.close()
            raise
        return cls(d, meta, client)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> "MilvusIndex":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- queries ---------------------------------------------------------------------------
    def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        client = self._client
        if client is None:
            raise IndexError_(Errors.E275.format(collection=self.collection, uri=self.uri, reason="the index is closed"))
        try:
            return getattr(client, fn)(*args, **kwargs)
        except _milvus_errors() as exc:
            raise IndexError_(Errors.E275.format(collection=self.collection, uri=self.uri, reason=str(exc))) from exc

    def _check_queries(self, queries: Any) -> np.ndarray:
        return check_queries(queries, self.dim, self.metric)

    def _score(self, distance: float) -> float:
        return -float(distance) if self.metric == "l2" else float(distance)

    def search(self, queries: np.ndarray, k: int = 10, **knobs: Any) -> tuple[np.ndarray, list[list[str]]]:
        """The ``k`` best distinct entities per query: ``(scores (Q, min(k, E)) float32, ids)``,
        best first, ``-inf`` padding (see :meth:`DenseIndex.search`). ``knobs`` are Milvus
        search params (``ef``, ``nprobe``...) over the recorded ``search_params``."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(Errors.E233.format(k=k))
        q = self._check_queries(queries)
        k_eff = int(min(k, self._n_entities, MAX_LIMIT))
        params = {"metric_type": METRIC_TYPES[self.metric], "params": {**self.params.get("search_params", {}), **knobs}}
        kw: dict[str, Any] = {}
        if self._max_per_entity > 1:
            kw["group_by_field"] = "entity"
        res = self._call("search", self.collection, data=q.tolist(), anns_field="vector", limit=k_eff,
                         output_fields=["entity"], search_params=params, **kw)
        out_s = np.full((q.shape[0], k_eff), -np.inf, dtype=np.float32)
        out_ids: list[list[str]] = []
        for i, hits in enumerate(res):
            pairs = [(self._score(h["distance"]), h["entity"]["entity"]) for h in hits]
            pairs.sort(key=lambda p: -p[0])
            got: list[str] = []
            for s, e in pairs:
                if e in got:
                    continue
                out_s[i, len(got)] = s
                got.append(e)
                if len(got) == k_eff:
                    break
            out_ids.append(got)
        return out_s, out_ids

    def _rows_of(self, entity_ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        """The rows of these entities: fetched by primary key (the entity id, then ``<id>\t<n>``:
        :func:`unique_keys`), which Milvus answers far faster than a filter on ``entity``
        (measured on Lite: 60 ms against 800 ms for 50 ids of 50,000); a filter only when an
        entity has more than :data:`MAX_KEYS_PER_ENTITY` vectors."""
        rows: list[dict[str, Any]] = []
        uniq = list(dict.fromkeys(e for e in entity_ids if isinstance(e, str) and e))
        fields = list(dict.fromkeys([*fields, "entity"]))
        if self._max_per_entity <= MAX_KEYS_PER_ENTITY:
            keys = [e if n == 0 else f"{e}\t{n}" for e in uniq for n in range(self._max_per_entity)]
            for s in range(0, len(keys), _FILTER_GROUP):
                rows.extend(self._call("get", self.collection, ids=keys[s : s + _FILTER_GROUP], output_fields=fields))
            return rows
        for s in range(0, len(uniq), _FILTER_GROUP):
            group = uniq[s : s + _FILTER_GROUP]
            rows.extend(self._call("query", self.collection, filter=f"entity in {_quoted(group)}", output_fields=fields))
        return rows

    def contains(self, entity_ids: Sequence[str]) -> np.ndarray:
        """``(n,)`` bool: which ids have at least one vector in the collection."""
        ids = list(entity_ids)
        have = {r["entity"] for r in self._rows_of(ids, ["entity"])}
        return np.array([e in have for e in ids], dtype=bool)

    def vectors_of(self, entity_id: str) -> np.ndarray:
        """The stored vectors of one entity: ``(n_i, D)`` float32 (by key order)."""
        rows = sorted(self._rows_of([entity_id], ["key", "vector"]), key=lambda r: r["key"])
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray([r["vector"] for r in rows], dtype=np.float32)

    def search_subset(
        self, queries: np.ndarray, candidate_ids: Sequence[str] | Sequence[Sequence[str]], k: int | None = None
    ) -> tuple[np.ndarray, list[list[str]]]:
        """Exact scores of the given entities only (see :meth:`DenseIndex.search_subset`): their
        vectors are fetched from Milvus and scored here."""
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise InputError(Errors.E233.format(k=k))
        q = self._check_queries(queries)
        nq = q.shape[0]
        per_query = candidates_per_query(candidate_ids, nq)
        wanted = sorted({e for c in per_query for e in c if isinstance(e, str)})
        rows = sorted(self._rows_of(wanted, ["key", "entity", "vector"]), key=lambda r: r["key"])
        by_entity: dict[str, list[np.ndarray]] = {}
        for r in rows:
            by_entity.setdefault(r["entity"], []).append(np.asarray(r["vector"], dtype=np.float32))
        results: list[tuple[np.ndarray, list[str]]] = []
        for i in range(nq):
            ents = [e for e in dict.fromkeys(per_query[i]) if e in by_entity]
            if not ents:
                results.append((np.zeros(0, dtype=np.float32), []))
                continue
            best = np.empty(len(ents), dtype=np.float32)
            for j, e in enumerate(ents):
                x = np.stack(by_entity[e])
                s = q[i : i + 1] @ x.T
                if self.metric == "l2":
                    s = 2.0 * s - (x * x).sum(axis=1)[None, :] - (q[i] * q[i]).sum()
                best[j] = s.max()
            order = np.argsort(-best, kind="stable")
            if k is not None:
                order = order[:k]
            results.append((best[order], [ents[o] for o in order]))
        return padded(results, k)

    def iter_vectors(self, batch_size: int = 4096) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
        """Every row as ``(keys, entity ids, (n, D) float32)`` blocks (to move the vectors back
        to FAISS files or to another Milvus)."""
        it = self._call("query_iterator", self.collection, batch_size=batch_size, filter="",
                        output_fields=["key", "entity", "vector"])
        try:
            while True:
                rows = it.next()
                if not rows:
                    break
                yield ([r["key"] for r in rows], [r["entity"] for r in rows],
                       np.asarray([r["vector"] for r in rows], dtype=np.float32))
        finally:
            it.close()


def is_milvus_record(path: str | Path) -> bool:
    """Whether the index directory ``path`` records a Milvus collection (its meta.json says so)."""
    try:
        return json.loads((Path(path) / "meta.json").read_text("utf-8")).get("backend") == BACKEND
    except (OSError, ValueError, AttributeError):
        return False


def _local_rows(idx: Any, step: int = 65_536) -> tuple[list[str], Iterator[np.ndarray]]:
    """The entity id of each row of a FAISS-file index, and its stored vectors in row order
    as ``(n, D)`` float32 blocks."""
    import pyarrow.parquet as pq

    ids = pq.read_table(Path(idx.path) / "ids.parquet", columns=["id"]).column("id").to_pylist()
    blocks = (np.asarray(idx._take(np.arange(s, min(s + step, len(idx)))), dtype=np.float32)
              for s in range(0, len(idx), step))
    return ids, blocks


def milvus_from_dense(path: str | Path, uri: str, *, token: str | None = None, collection: str | None = None,
                      progress: bool = True, **options: Any) -> MilvusIndex:
    """Move the FAISS-file index at ``path`` (a KB's ``vectors/<space>/<slug>/``) into Milvus
    and replace it with the Milvus record (the vectors go as stored: float16 files lose nothing
    more)."""
    from .dense import DenseIndex

    idx = DenseIndex.open(path)
    try:
        ids, chunks = _local_rows(idx)
        return MilvusIndex.build(path, chunks, None, ids, uri=uri, model_id=idx.model_id, space=idx.space,
                                 metric=idx.metric, kb_build_id=idx.kb_build_id, token=token, collection=collection,
                                 progress=progress, **options)
    finally:
        idx.close()


def dense_from_milvus(path: str | Path, backend: str = "auto", *, token: str | None = None, progress: bool = True,
                      **params: Any) -> Any:
    """Read the vectors of the Milvus index recorded at ``path`` back into FAISS files there
    (``backend``: ``auto``, ``exact``, ``ivfpq``, ``hnsw``)."""
    from .dense import DenseIndex

    m = MilvusIndex.open(path, token=token)
    try:
        ids: list[str] = []
        blocks: list[np.ndarray] = []
        for _, ents, vec in m.iter_vectors():
            ids.extend(ents)
            blocks.append(vec)
        return DenseIndex.build(path, iter(blocks), ids, model_id=m.model_id, space=m.space, metric=m.metric,
                                backend=backend, overwrite=True, kb_build_id=m.kb_build_id, progress=progress, **params)
    finally:
        m.close()


def reindex(path: str | Path, backend: str, *, uri: str | None = None, token: str | None = None,
            collection: str | None = None, progress: bool = True, **options: Any) -> Any:
    """Serve the index at ``path`` (a KB's ``vectors/<space>/<slug>/``) from ``backend``: move
    FAISS files into Milvus (``milvus``, needs ``uri``), a Milvus collection back into FAISS
    files (``auto``, ``exact``, ``ivfpq``, ``hnsw``), or rebuild within the same kind. The
    vectors are read from what serves them now. ``options``: Milvus ``index_type``,
    ``index_params``, ``search_params``, or FAISS knobs."""
    from .dense import DenseIndex

    now_milvus = is_milvus_record(path)
    if backend == BACKEND:
        if not uri:
            raise InputError(Errors.E274.format(name="uri", value=uri, reason="--backend milvus needs --uri"))
        if not now_milvus:
            return milvus_from_dense(path, uri, token=token, collection=collection, progress=progress, **options)
        src = MilvusIndex.open(path, token=token)
        try:
            blocks = list(src.iter_vectors())
        finally:
            src.close()
        keys = [k for b in blocks for k in b[0]]
        ids = [e for b in blocks for e in b[1]]
        new = Path(uri).expanduser().resolve() if is_lite(uri) else uri
        if str(new) == src.uri and (collection or src.collection) == src.collection:
            raise InputError(Errors.E274.format(name="uri", value=uri, reason="the index is already in that collection"))
        return MilvusIndex.build(path, (b[2] for b in blocks), keys, ids, uri=uri, model_id=src.model_id,
                                 space=src.space, metric=src.metric, kb_build_id=src.kb_build_id, token=token,
                                 collection=collection, progress=progress, **options)
    if now_milvus:
        return dense_from_milvus(path, backend, token=token, progress=progress, **options)
    idx = DenseIndex.open(path)
    try:
        ids, blocks = _local_rows(idx)
        return DenseIndex.build(path, blocks, ids, model_id=idx.model_id, space=idx.space, metric=idx.metric,
                                backend=backend, overwrite=True, kb_build_id=idx.kb_build_id, progress=progress,
                                **options)
    finally:
        idx.close()
