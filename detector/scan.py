"""Scans that scale out: shard a file list over processes (and GPUs), decode in DataLoader workers,
write JSONL as results come, and resume.

    python -m detector scan photos/ --jsonl results.jsonl                                # one process
    accelerate launch --multi_gpu --num_processes 4 -m detector scan photos/ --jsonl results.jsonl  # 4 GPUs
    torchrun --nproc_per_node 2 -m detector scan photos/ --jsonl results.jsonl          # 2 CPU processes

Each process scores every ``num_processes``-th file not yet in the output and appends its results to
``OUT.part-RANK`` (one JSON object per line, flushed per batch). At the end the main process appends
every part to ``OUT`` and removes the parts. A run killed half-way leaves its lines in the parts; the
next run reads ``OUT`` and the parts, and skips every file already there (matched by the path as given,
so resume with the same paths).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .config import ModelConfig
from .inputs import Prepared, prepare_input
from .pipeline import Detector


@dataclass
class _Files(Dataset):
    """Decode + preprocess in a DataLoader worker: the main process only runs the model."""

    paths: list[str]
    config: ModelConfig

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Prepared:
        return prepare_input(self.paths[index], self.config, index)


def _as_list(batch: list) -> list:
    return batch


def _parts(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f"{out.name}.part-*"))


def _records(path: Path) -> Iterator[tuple[str, str]]:
    """(source, line) of every complete JSON line of a results file (a torn last line is skipped)."""
    if not path.is_file():
        return
    with open(path) as fh:  # streamed: a million-file scan's output need not fit in memory twice
        for line in fh:
            line = line.rstrip("\n")
            try:
                yield json.loads(line)["source"], line
            except (json.JSONDecodeError, KeyError, TypeError):
                continue


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left unfinished by a killed run, so the next line appended starts on its own."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(-1, 2)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        fh.truncate(fh.read().rfind(b"\n") + 1)


def done_sources(out: Path) -> set[str]:
    """Files already scored in ``out`` or in its unmerged parts."""
    return {source for path in [out, *_parts(out)] for source, _ in _records(path)}


def _process_group():
    """accelerate's view of the launch: (process index, process count, device, barrier). One process
    when not launched by ``accelerate launch`` / ``torchrun``."""
    from datetime import timedelta

    from accelerate import PartialState
    from accelerate.utils import InitProcessGroupKwargs

    # a process that finishes its share early waits at the final barrier for the slowest one: allow a day
    # (the default 30 minutes would end a long scan with a timeout); CPU-only: gloo between the processes
    wait = InitProcessGroupKwargs(timeout=timedelta(days=1)).to_kwargs()
    state = PartialState(cpu=not torch.cuda.is_available(), **wait)
    return state.process_index, state.num_processes, state.device, state.wait_for_everyone


def scan_to_jsonl(detector_factory, inputs: list[str], out: Path, with_dire: bool = False, batch_size: int = 8,
                  workers: int = 2, quiet: bool = False) -> dict:
    """Score ``inputs`` not yet in ``out`` on this process's shard; returns this process's counts. The
    detector is built by ``detector_factory(device)`` on the device accelerate assigns to the process."""
    from tqdm import tqdm

    rank, world, device, barrier = _process_group()
    out = Path(out)
    done = done_sources(out)
    barrier()  # every process has read the same "done" set before anyone writes
    todo = [p for p in inputs if p not in done][rank::world]
    detector: Detector = detector_factory(device)
    loader = DataLoader(_Files(todo, detector.config), batch_size=batch_size,
                        num_workers=workers if todo else 0, collate_fn=_as_list)
    counts = {"skipped": len(done & set(inputs)) if rank == 0 else 0, "scored": 0, "errors": 0}
    part = out.parent / f"{out.name}.part-{rank}"
    out.parent.mkdir(parents=True, exist_ok=True)
    _drop_torn_tail(part)
    with open(part, "a") as fh, tqdm(total=len(todo), unit="img", disable=quiet or None, file=sys.stderr,
                                      position=rank, desc=f"process {rank}/{world}" if world > 1 else None) as bar:
        for batch in loader:
            for result in detector.score(batch, with_dire=with_dire):
                fh.write(json.dumps(result.to_dict()) + "\n")
                counts["errors" if result.error else "scored"] += 1
            fh.flush()
            bar.update(len(batch))
    barrier()
    if rank == 0:
        merge_parts(out)
    barrier()
    return counts


def merge_parts(out: Path) -> None:
    """Append every ``OUT.part-*`` to ``OUT`` (skipping files already there) and remove the parts."""
    seen = {source for source, _ in _records(out)}
    _drop_torn_tail(out)
    with open(out, "a") as merged:
        for part in _parts(out):
            for source, line in _records(part):
                if source not in seen:
                    merged.write(line + "\n")
                    seen.add(source)
            part.unlink()
