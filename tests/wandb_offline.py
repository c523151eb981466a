"""Read the history of an offline W&B run from its `.wandb` log (no network, no sync), for tests."""

from __future__ import annotations

import struct
from pathlib import Path

_BLOCK, _HEADER = 32768, 7  # the log is LevelDB's format after a 7-byte ":W&B" file header


def history(run_dir: str | Path) -> list[dict[str, str]]:
    """Every `wandb.log` row of the one offline run under `run_dir`, as {key: value_json}."""
    from wandb.proto import wandb_internal_pb2

    (path,) = Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B log"
    records, pending, pos = [], b"", _HEADER
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER]) if left >= _HEADER else (0, 0, 0)
        if kind == 0:  # block padding
            pos += left
            continue
        payload, pos = data[pos + _HEADER:pos + _HEADER + length], pos + _HEADER + length
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):  # a full record, or the last piece of one
            records.append(pending)
    rows = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return rows
