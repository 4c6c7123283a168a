"""search --tracker: one real tiny search logged to W&B (offline), MLflow and Aim at once, each read back
with the tracker's own reader; and, without Ray, the refusals, the default places and the variables
that move them."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest

import launch
from search_spaces.commands import COMMANDS
from search_spaces.driver import ClusterShape, ExperimentRecord, describe, new_record
from search_spaces.driver.trackers import TRACKERS, check_trackers, tracker_callbacks
from tests.test_launch import TINY, output_within, trial_results
from tests.test_launch import launch as run_launch
from trainable.errors import UserError
from trainable.objectstore import mirror_of

# the variables that configure each tracker: unset, the defaults apply (offline, inside the experiment)
TRACKER_VARIABLES = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "MLFLOW_TRACKING_URI",
                     "MLFLOW_EXPERIMENT_NAME")


@pytest.fixture
def no_tracker_config(monkeypatch, tmp_path):
    """No tracker configured by the environment; W&B's own folders (settings, cache, core logs) in the test's
    folder, and its error reports off: with the offline default nothing leaves the machine."""
    for name in TRACKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")


# ---- one real search, every tracker ----

def test_a_search_logs_every_trial_to_each_tracker(tiny_master, tmp_path, no_tracker_config):
    proc = run_launch("search", "--space", "augmentation", "--data", str(tiny_master), "--storage-path",
                      str(tmp_path), "--name", "tracked", "--num-samples", "2", "--max-epochs", "2", "--grace-period",
                      "1", *TINY, "--tracker", "wandb", "mlflow", "aim", start_new_session=True)
    out = output_within(proc, timeout=300)
    assert proc.returncode == 0, out[-3000:]
    exp = tmp_path / "tracked"
    line = next(x for x in out.splitlines() if x.startswith("trackers:"))
    for command in (f"wandb sync {exp}/wandb/offline-run-*", f"mlflow ui --backend-store-uri sqlite:///{exp}/mlflow.db",
                    f"aim up --repo {exp}"):
        assert command in line
    assert json.loads((exp / "experiment.json").read_text())["trackers"] == ["wandb", "mlflow", "aim"]

    record = json.loads((exp / "experiment.json").read_text())
    metric = record["metric"]
    results = trial_results(exp)
    assert len(results) == 2 and all(results.values())
    # what each tracker must hold: a trial's metric at each epoch, as its result.json has it
    history = {name: [(row["epoch"], row[metric]) for row in rows] for name, rows in results.items()}
    for rows in results.values():
        assert [row["training_iteration"] for row in rows] == [row["epoch"] for row in rows]  # Ray's step is the epoch
    configs = {name: json.loads((exp / name / "params.json").read_text()) for name in results}
    searched = [key.replace(".", "/") for key in new_record("augmentation", name="x").searched]

    _check_mlflow(exp, history, configs, metric)
    _check_aim(exp, history, configs, metric, searched)
    _check_wandb(exp, history, configs, metric)


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_mlflow(exp: Path, history: dict, configs: dict, metric: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{exp}/mlflow.db")
    experiment = client.get_experiment_by_name(exp.name)
    runs = {run.data.tags["trial_name"]: run for run in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(history)
    for name, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.params == {key: str(value) for key, value in _flat(configs[name]).items()}
        steps = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric)]
        assert sorted(steps) == pytest.approx(history[name])
        assert sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "epoch")) == \
            [(epoch, epoch) for epoch, _ in history[name]]


def _check_aim(exp: Path, history: dict, configs: dict, metric: str, searched: list[str]) -> None:
    import aim
    from aim.sdk.index_manager import RepoIndexManager

    # Aim's readers read its index, which `aim up` builds as it starts (and `aim storage reindex`): as the CLI
    repo = aim.Repo.from_path(str(exp))
    indexer = RepoIndexManager.get_index_manager(repo)
    for run_hash in repo.list_all_runs():
        indexer.index(run_hash)
    runs = {Path(run["trial_log_dir"]).name: run for run in aim.Repo.from_path(str(exp)).iter_runs()}
    assert sorted(runs) == sorted(history)
    for name, run in runs.items():
        assert run.experiment == exp.name
        assert run["hparams"] == {key: _flat(configs[name])[key] for key in searched}
        [sequence] = [m for m in run.metrics() if m.name == f"ray/tune/{metric}"]
        assert sorted(zip(sequence.epochs.values_list(), sequence.values.values_list())) == pytest.approx(history[name])


def _wandb_records(path: Path):
    """The records of a W&B transaction log (``run-ID.wandb``): a header, then LevelDB's log format (32 KiB
    blocks of chunks, each with a CRC, a length and its place in a record). W&B 0.31 ships no Python reader."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0)
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):  # each pass consumes a chunk or a block's padding
        if block - pos % block < 7:  # no room for a chunk header: the block's rest is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or a record's last chunk
            record = Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _wandb_items(items) -> dict:
    """A config's or a history step's items by key (``nested_key``: a path of keys, one here)."""
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def _check_wandb(exp: Path, history: dict, configs: dict, metric: str) -> None:
    logs = {path.parent.name.rsplit("-", 1)[1]: path for path in exp.glob("wandb/offline-run-*/run-*.wandb")}
    assert sorted(f"trial_{trial_id}" for trial_id in logs) == sorted(history)  # Ray's run id: the trial id
    for trial_id, path in logs.items():
        name, config, steps = f"trial_{trial_id}", {}, []
        for record in _wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                assert record.run.project == exp.name and record.run.run_id == trial_id
            if kind in ("run", "config"):
                items = record.run.config.update if kind == "run" else record.config.update
                config.update(_wandb_items(items))
            if kind == "history":
                values = _wandb_items(record.history.item)
                steps.append((values["epoch"], values[metric]))
        assert {key: config[key] for key in configs[name]} == configs[name]
        assert steps == pytest.approx(history[name])


# ---- without Ray ----

def test_a_tracker_whose_package_is_missing_is_refused_before_ray_starts(tmp_path, monkeypatch, capsys):
    import ray

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aim" else find_spec(name, *a))
    code = launch.main(["search", "--space", "augmentation", "--storage-path", str(tmp_path / "exps"),
                        "--tracker", "wandb", "aim"])
    assert code == 2
    assert capsys.readouterr().err == ("error: --tracker aim: the aim package is not installed; pip install "
                                       "'facesearch[aim]'\n")
    assert not (tmp_path / "exps").exists() and not ray.is_initialized()
    with pytest.raises(UserError, match=r"the wandb and aim packages are not installed; pip install "
                                        r"'facesearch\[wandb,aim\]'"):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
        check_trackers(["wandb", "aim"])


def test_an_unknown_tracker_lists_the_valid_ones(tmp_path, capsys):
    assert launch.main(["search", "--space", "augmentation", "--storage-path", str(tmp_path / "exps"),
                        "--tracker", "neptune"]) == 2
    assert capsys.readouterr().err == "error: --tracker neptune: valid trackers are wandb, mlflow, aim\n"
    assert not (tmp_path / "exps").exists()
    help_text = COMMANDS["search"][2]["--tracker"]["help"]
    assert all(name in help_text for name in TRACKERS)  # the help names every tracker


def test_resume_takes_the_trackers_from_the_record(capsys):
    with pytest.raises(SystemExit, match="2"):  # argparse's refusal
        launch.main(["resume", "EXP", "--tracker", "wandb"])
    assert "resume does not take --tracker (a flag of search)" in capsys.readouterr().err


def _record(**kwargs) -> ExperimentRecord:
    return new_record("augmentation", name="tracked", **kwargs)


def test_each_tracker_logs_inside_the_experiment_by_default(tmp_path, no_tracker_config):
    wandb, mlflow, aim = tracker_callbacks(tmp_path, _record(trackers=["wandb", "mlflow", "aim"]))
    assert wandb.project == "tracked" and wandb.kwargs["mode"] == "offline" and wandb.kwargs["dir"] == str(tmp_path)
    assert wandb.api_key  # a placeholder Ray's driver asks for; an offline run reads none
    assert mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db" and mlflow.experiment_name == "tracked"
    assert aim._repo_path == str(tmp_path) and aim._experiment_name == "tracked"  # (Ray's own attributes)
    line = describe(tmp_path, _record(trackers=["wandb", "mlflow", "aim"]), ClusterShape(()))[-1]
    assert line == (f"trackers:       wandb (offline in {tmp_path}/wandb: wandb sync {tmp_path}/wandb/offline-run-*), "
                    f"mlflow (mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db), "
                    f"aim (aim up --repo {tmp_path})")
    assert not any(x.startswith("trackers:") for x in describe(tmp_path, _record(), ClusterShape(())))


@pytest.mark.parametrize("variables, mode, folder", [
    ({"WANDB_API_KEY": "k" * 40}, "online", None),  # a key: the user's account, online
    ({"WANDB_MODE": "disabled"}, "disabled", None),
    ({"WANDB_MODE": "offline", "WANDB_DIR": "/elsewhere"}, "offline", "/elsewhere"),
])
def test_a_configured_wandb_is_respected(tmp_path, no_tracker_config, monkeypatch, variables, mode, folder):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    [wandb] = tracker_callbacks(tmp_path, _record(trackers=["wandb"]))
    assert wandb.kwargs["mode"] == mode and wandb.kwargs["dir"] == (folder or str(tmp_path))
    assert "settings" not in wandb.kwargs or mode == "offline"


def test_mlflow_follows_its_tracking_uri(tmp_path, no_tracker_config, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    [mlflow] = tracker_callbacks(tmp_path, _record(trackers=["mlflow"]))
    assert mlflow.tracking_uri == "http://127.0.0.1:5000"
    assert describe(tmp_path, _record(trackers=["mlflow"]), ClusterShape(()))[-1].endswith(
        "mlflow (mlflow ui --backend-store-uri http://127.0.0.1:5000)")


def test_an_experiment_in_an_object_store_keeps_no_tracker_store(no_tracker_config, monkeypatch):
    mirror = mirror_of("s3://bucket/exps/tracked")
    for name, where in (("wandb", "WANDB_DIR"), ("mlflow", "MLFLOW_TRACKING_URI"), ("aim", "--storage-path")):
        for place in ("s3://bucket/exps", mirror):
            with pytest.raises(UserError, match=f"--tracker {name}: s3://bucket/exps.* object store.*{where}"):
                check_trackers([name], place)
    check_trackers(["wandb", "mlflow", "aim"], "/local/exps")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("WANDB_MODE", "online")  # its runs are W&B's; the local files a cache
    check_trackers(["wandb", "mlflow"], mirror)


class _Trial:
    """What Ray's MLflow callback reads of a trial: its name (``str``) and config."""

    def __init__(self, name: str) -> None:
        self.name, self.config = name, {"aug": {"rotate_limit": 25.0}}

    def __str__(self) -> str:
        return self.name


def test_the_runs_an_interrupt_leaves_open_are_ended(tmp_path, no_tracker_config, monkeypatch):
    # Tune ends no trial an interrupt stopped: MLflow's run is ended KILLED, not left RUNNING
    from mlflow.tracking import MlflowClient

    wandb, mlflow = tracker_callbacks(tmp_path, _record(trackers=["wandb", "mlflow"]))
    mlflow.setup()
    ended, interrupted = _Trial("trial_a"), _Trial("trial_b")
    for trial in (ended, interrupted):
        mlflow.log_trial_start(trial)
        mlflow.log_trial_result(1, trial, {"training_iteration": 1, "epoch": 1, "val_miou": 50.0})
    mlflow.log_trial_end(ended)
    mlflow.on_experiment_end([ended, interrupted])
    client = MlflowClient(tracking_uri=mlflow.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert {r.info.run_name: r.info.status for r in runs} == {"trial_a": "FINISHED", "trial_b": "KILLED"}

    # W&B's logging actor of such a trial is told to end its run, as Tune tells a finished trial's; Ray's
    # callback waited its whole upload timeout (30 min) for it after a Ctrl-C
    class Queue(list):
        put = list.append

    wandb._trial_queues = {ended: Queue(), interrupted: Queue()}
    monkeypatch.setattr(wandb, "_cleanup_logging_actors", lambda **kwargs: None)  # (no Ray here)
    wandb.on_experiment_end([ended, interrupted])
    assert [item[0].name for item in wandb._trial_queues[interrupted]] == ["END"]


def test_the_record_keeps_the_trackers_and_reads_records_without_them():
    record = _record(trackers=["mlflow", "wandb", "mlflow"])
    assert record.trackers == ["mlflow", "wandb"]  # each once, in the order given
    assert ExperimentRecord.from_dict(record.to_dict()).trackers == ["mlflow", "wandb"]
    earlier = {k: v for k, v in record.to_dict().items() if k != "trackers"}
    assert ExperimentRecord.from_dict(earlier).trackers == []
    with pytest.raises(UserError, match="--tracker neptune: valid trackers are wandb, mlflow, aim"):
        ExperimentRecord.from_dict({**record.to_dict(), "trackers": ["neptune"]})
    with pytest.raises(UserError, match="trackers='aim' in the experiment record: expected list"):
        ExperimentRecord.from_dict({**record.to_dict(), "trackers": "aim"})


def test_a_restored_search_logs_where_its_experiment_is_now(tmp_path, no_tracker_config):
    # resume builds the tracker callbacks afresh for the folder the experiment is in now (a moved or
    # copied experiment), keeping Tune's other pickled callbacks as they were
    from search_spaces.driver.trackers import without_trackers

    record = _record(trackers=["mlflow", "aim"])
    pickled = ["progress", "results", *tracker_callbacks(tmp_path / "before", record)]
    kept = [*without_trackers(pickled), *tracker_callbacks(tmp_path / "now", record)]
    assert kept[:2] == ["progress", "results"] and len(kept) == 4
    assert kept[2].tracking_uri == f"sqlite:///{tmp_path}/now/mlflow.db" and kept[3]._repo_path == str(tmp_path / "now")
