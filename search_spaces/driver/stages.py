"""Searches that build on each other: a search whose baseline is another's trial (``--from EXP``), and
a staged search (``--space augmentation,loss,optimizer``) that runs its spaces in order, each stage a
search of its own whose baseline is the best trial of the stage before.

A staged search is a folder of experiments (``trainable.layout``): ``stages.json`` keeps the spaces
and the flags every stage is built from, so that ``resume RUN`` builds the stages still to come as
the first ones were built.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from search_spaces import get_space
from search_spaces.driver.record import TTA_IS_NOT_SEARCHED, ExperimentRecord
from search_spaces.driver.search import check_name
from trainable.errors import UserError
from trainable.layout import STAGES_FILE, replacing, stage_dir_name
from trainable.objectstore import filesystem, is_uri, mirror_of, push, uri_of

__all__ = ["StagedRun", "check_parent", "inherited", "next_space", "parse_spaces"]

# the order the face-parsing reports searched in: augmentation, then the loss mix on it, then the
# optimiser; test-time augmentation is scored on the last stage's checkpoint (launch.py tta)
STAGE_ORDER = ("augmentation", "loss", "optimizer")


def next_space(space: str) -> str | None:
    """The space a search of ``space`` is usually followed by (``None``: the next step is tta)."""
    if space not in STAGE_ORDER or space == STAGE_ORDER[-1]:
        return None
    return STAGE_ORDER[STAGE_ORDER.index(space) + 1]


def parse_spaces(value: str) -> list[str]:
    """The spaces of ``--space a,b,c``, each a trained space; a repeated or unknown one is refused."""
    spaces = [s.strip() for s in value.split(",")]
    for space in spaces:
        if not space:
            raise UserError(f"--space {value!r}: an empty space name; list spaces as augmentation,loss,optimizer")
        if get_space(space) is None:  # (an unknown name lists the valid ones)
            raise UserError(TTA_IS_NOT_SEARCHED)
    if len(set(spaces)) < len(spaces):
        raise UserError(f"--space {value}: a space appears twice; each stage searches another space")
    return spaces


def inherited(parent: ExperimentRecord, where: str, metric: str | None, challenge: str | None) -> dict:
    """The metric and the challenge of a search that starts from ``parent`` (at ``where``): the parent's,
    as scores are compared across the two; another given is refused."""
    for flag, given, own in (("--metric", metric, parent.metric), ("--challenge", challenge, parent.challenge)):
        if given is not None and given != own:
            raise UserError(f"{flag} {given}: --from {where} searched with {flag} {own or 'none'}; a search started "
                            f"from it keeps that, so that their scores compare: drop {flag}")
    return {"metric": parent.metric, "challenge": parent.challenge or None}


def check_parent(record: ExperimentRecord, parent: ExperimentRecord, where: str) -> None:
    """A search starting from ``parent`` must train and validate on the same data."""
    if record.config.data.root != parent.config.data.root:
        mine = record.config.data.root or "the built-in synthetic set"
        theirs = parent.config.data.root or "the built-in synthetic set"
        raise UserError(f"--data {mine}: --from {where} searched on {theirs}; a search started from it uses the "
                        f"same data, so that their scores compare: drop --data")


@dataclass
class StagedRun:
    """A staged search: its folder, its spaces in order, and the search flags each stage is built from."""

    path: Path  # local (an object store's: its mirror)
    spaces: list[str]
    flags: dict  # search's flags as parsed, the command line too (without --space, --name, --storage-path, Ray's)
    created: str = ""

    def stage_dir(self, index: int) -> Path:
        """The experiment folder of stage ``index`` (from 0)."""
        return self.path / stage_dir_name(index + 1, self.spaces[index])

    def stage_dirs(self) -> list[Path]:
        """The stages' folders that exist, in order."""
        return [self.stage_dir(i) for i in range(len(self.spaces)) if self.stage_dir(i).is_dir()]

    def write(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        state = {k: v for k, v in asdict(self).items() if k != "path"}
        with replacing(self.path / STAGES_FILE) as tmp:
            tmp.write_text(json.dumps(state, indent=2) + "\n")
        if uri_of(self.path):
            push(self.path / STAGES_FILE)

    @classmethod
    def create(cls, storage_path: str, name: str, spaces: list[str], flags: dict) -> StagedRun:
        """A new staged search called ``name`` under ``storage_path`` (a folder or an object store's URI);
        one that exists there is refused. Nothing is written yet (``write``)."""
        check_name(name)
        if is_uri(storage_path):
            uri = f"{storage_path.rstrip('/')}/{name}"
            fs, path = filesystem(uri)
            exists, place, run_path = fs.get_file_info(f"{path}/{STAGES_FILE}").size is not None, uri, mirror_of(uri)
            if not exists and run_path.exists():  # a mirror of a staged search the store no longer holds
                shutil.rmtree(run_path)
        else:
            run_path = Path(storage_path).expanduser().resolve() / name
            exists, place = run_path.exists(), run_path
        if exists:
            raise UserError(f"{place}: already exists; continue it with python launch.py resume {place} or choose "
                            f"another --name")
        return cls(run_path, spaces, flags, time.strftime("%Y-%m-%d %H:%M:%S"))

    @classmethod
    def read(cls, path: str | Path) -> StagedRun | None:
        """The staged search in ``path``; ``None`` when ``path`` is not one."""
        file = Path(path) / STAGES_FILE
        if not file.is_file():
            return None
        try:
            state = json.loads(file.read_text())
            return cls(Path(path), list(state["spaces"]), dict(state["flags"]), state.get("created", ""))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{file}: unreadable ({e}); it was written by python launch.py search --space a,b") \
                from None
