"""Read the history of an offline W&B run from its `.wandb` log (no network, no sync), for tests."""

from __future__ import annotations

import struct
from pathlib import Path

_BLOCK, _HEADER = 32768, 7  # the log is LevelDB's format after a 7-byte ":W&B" file header


def records(run_dir: str | Path) -> list:
    """Every record (protobuf `Record`) of the one offline run under `run_dir`, in order."""
    from wandb.proto import wandb_internal_pb2

    (path,) = Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B log"
    raw_records, pending, pos = [], b"", _HEADER
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER]) if left >= _HEADER else (0, 0, 0)
        if kind == 0:  # block padding
            pos += left
            continue
        payload, pos = data[pos + _HEADER:pos + _HEADER + length], pos + _HEADER + length
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):  # a full record, or the last piece of one
            raw_records.append(pending)
    parsed = []
    for raw in raw_records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        parsed.append(record)
    return parsed


def history(run_dir: str | Path) -> list[dict[str, str]]:
    """Every `wandb.log` row of the one offline run under `run_dir`, as {key: value_json}."""
    return [{item.key or "/".join(item.nested_key): item.value_json for item in record.history.item}
            for record in records(run_dir) if record.WhichOneof("record_type") == "history"]


def run_group(run_dir: str | Path) -> str:
    """The W&B group the offline run under `run_dir` was started in ("" if none)."""
    return next(r.run.run_group for r in records(run_dir) if r.WhichOneof("record_type") == "run")
