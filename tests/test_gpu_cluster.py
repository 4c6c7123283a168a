"""A search on a Ray cluster whose GPUs are declared as resources (as Ray tests its own GPU scheduling
without a GPU): a CPU-only head, GPU workers. The hardware defaults come from the cluster, trials run
on the GPU nodes (torch sees no CUDA there, so they train on the CPU and say so), and fractional GPUs
pack several trials on one GPU at the same time."""

from __future__ import annotations

import pytest
from ray.cluster_utils import Cluster

from search_spaces.driver import ClusterShape, TrialResources, new_record
from search_spaces.driver.cluster import Node
from tests.test_launch import ROOT, TINY, launch, trial_results
from trainable.errors import UserError

HEAD = Node(cpus=4, gpus=0)  # a CPU-only head, as KubeRay and most SLURM setups have


@pytest.mark.parametrize("workers, flags, expected", [
    # no GPU anywhere: the CPU defaults, one CPU per trial
    ((), {}, (1, 0)),
    ((Node(8, 0),), {}, (1, 0)),
    # a GPU per trial, and the GPU node's CPUs per trial slot with one left to Ray
    ((Node(8, 1),), {}, (7, 1)),
    ((Node(8, 2),), {}, (3, 1)),
    ((Node(16, 1),), {"gpus_per_trial": 0.25}, (3, 0.25)),
    ((Node(8, 8),), {}, (1, 1)),  # one CPU per GPU: none left over, and no GPU left idle for it
    ((Node(4, 8),), {}, (1, 1)),  # fewer CPUs than GPUs: one each still
    ((Node(8, 1), Node(32, 8)), {}, (3, 1)),  # the node with the fewest CPUs per slot sets the figure
    # the flags win
    ((Node(8, 1),), {"cpus_per_trial": 2}, (2, 1)),
    ((Node(8, 1),), {"gpus_per_trial": 0}, (1, 0)),
    ((Node(8, 1),), {"gpus_per_trial": 0, "cpus_per_trial": 4}, (4, 0)),
])
def test_each_trials_resources_follow_the_cluster_not_the_driver(workers, flags, expected):
    cluster = ClusterShape((HEAD, *workers))
    trial = cluster.trial_resources(flags.get("cpus_per_trial"), flags.get("gpus_per_trial"))
    assert (trial.cpus, trial.gpus) == expected
    record = new_record("augmentation", cluster=cluster, **flags)
    assert (record.cpus_per_trial, record.gpus_per_trial) == expected
    # the GPU defaults (full-size images, longer trials, loader workers from the trial's CPUs) with GPUs only
    assert record.config.data.image_size == (512 if expected[1] else 64)
    if expected[1]:
        assert record.config.data.num_workers == max(1, expected[0] - 1)


def test_a_search_that_leaves_the_gpus_idle_says_so():
    cluster = ClusterShape((HEAD, Node(8, 2)))
    assert cluster.notes(TrialResources(1, 0)) == [
        "the cluster has 2 GPUs but each trial uses none (--gpus-per-trial 0): the search trains on CPUs only, "
        "with the CPU defaults"]
    assert cluster.notes(TrialResources(3, 1)) == []
    assert cluster.describe() == "2 nodes, 12 CPUs, 2 GPUs (on 1 node)"


@pytest.mark.parametrize("trial, fits", [
    (TrialResources(7, 1), True),
    (TrialResources(8, 1), True),
    (TrialResources(9, 1), False),  # no node has 9 CPUs and a GPU
    (TrialResources(1, 2), False),  # no node has two GPUs
    (TrialResources(4, 0.5), True),
    (TrialResources(16, 0), False),
])
def test_a_trial_no_node_can_hold_is_refused_before_it_waits_for_ever(trial, fits):
    cluster = ClusterShape((HEAD, Node(8, 1, "10.0.0.2")))
    if fits:
        cluster.check_fits(trial)
        return
    with pytest.raises(UserError) as e:
        cluster.check_fits(trial)
    assert str(e.value) == (f"each trial asks for {trial.cpus:g} CPU and {trial.gpus:g} GPU, but no node of the "
                            f"cluster (2 nodes, 12 CPUs, 1 GPU (on 1 node)) has that much; the largest has 8 CPU and "
                            f"1 GPU (10.0.0.2): lower --cpus-per-trial or --gpus-per-trial, or add a node that fits")


@pytest.mark.parametrize("trial, slots", [
    (TrialResources(1, 0), 4 + 8),  # by CPUs, on every node
    (TrialResources(7, 1), 1),
    (TrialResources(1, 0.25), 4),  # by the GPU, on the GPU node only
    (TrialResources(3, 0.25), 2),  # by that node's CPUs
])
def test_the_trials_a_cluster_runs_at_once(trial, slots):
    assert ClusterShape((HEAD, Node(8, 1))).trial_slots(trial) == slots


@pytest.fixture(scope="module")
def gpu_cluster():
    """A head without GPUs (the driver's side) and one worker with one declared GPU and 4 CPUs."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")
        cluster = Cluster(initialize_head=True,
                          head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False})
        worker = cluster.add_node(num_cpus=4, num_gpus=1)
        cluster.wait_for_nodes()
        yield cluster, worker
        cluster.shutdown()


def _search(cluster: Cluster, data, storage, name: str, *flags: str, code: int = 0) -> str:
    proc = launch("search", "--space", "augmentation", "--data", str(data), "--storage-path", str(storage),
                  "--name", name, "--address", cluster.address, "--set", "data.image_size=64", *TINY, *flags)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == code, out[-3000:]
    return out


def test_a_trial_no_node_of_the_cluster_can_hold_is_refused_at_once(gpu_cluster, tiny_master, tmp_path):
    cluster, worker = gpu_cluster
    out = _search(cluster, tiny_master, tmp_path, "big", "--gpus-per-trial", "2", code=2)
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert errors == ["error: each trial asks for 1 CPU and 2 GPU, but no node of the cluster (2 nodes, 5 CPUs, 1 GPU "
                      f"(on 1 node)) has that much; the largest has 4 CPU and 1 GPU ({worker.node_ip_address}): lower "
                      "--cpus-per-trial or --gpus-per-trial, or add a node that fits"], out[-2000:]
    assert "Traceback" not in out and not (tmp_path / "big").exists()


def test_a_cpu_head_with_a_gpu_worker_gets_the_gpu_defaults_and_trains_there(gpu_cluster, tiny_master, tmp_path):
    cluster, worker = gpu_cluster
    out = _search(cluster, tiny_master, tmp_path, "gpu", "--num-samples", "2", "--max-epochs", "2",
                  "--grace-period", "2", "--reduction-factor", "2")
    assert "cluster:        2 nodes, 5 CPUs, 1 GPU (on 1 node)" in out
    assert "each trial:     3 CPU, 1 GPU, 64 px, 2 epochs" in out  # the GPU node's 4 CPUs, one left to Ray
    results = trial_results(tmp_path / "gpu")
    assert len(results) == 2 and all(len(rows) == 2 for rows in results.values())
    for rows in results.values():
        # on the GPU node, given its GPU; torch sees no CUDA there, so it trained on the CPU
        assert {(r["node"], r["gpus"], r["device"]) for r in rows} == {(worker.node_id, "0", "cpu")}


def test_four_quarter_gpu_trials_run_at_once_on_one_gpu(gpu_cluster, tiny_master, tmp_path):
    cluster, worker = gpu_cluster
    epochs = 6  # long enough to outlast the serial start of four trial processes
    _search(cluster, tiny_master, tmp_path, "packed", "--num-samples", "4", "--gpus-per-trial", "0.25",
            "--cpus-per-trial", "1", "--max-epochs", str(epochs), "--grace-period", str(epochs),
            "--reduction-factor", "2")
    results = trial_results(tmp_path / "packed")
    assert len(results) == 4
    # each trial's own record: when it started (its first report less the time it had trained by
    # then) and when it reported its last epoch
    spans = [(rows[0]["timestamp"] - rows[0]["time_total_s"], rows[-1]["timestamp"]) for rows in results.values()]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans  # all four ran at one moment
    assert all(len(rows) == epochs and {r["node"] for r in rows} == {worker.node_id} for rows in results.values())


def test_the_kuberay_manifest_runs_a_valid_search_on_a_cpu_head_and_gpu_workers():
    import shlex

    import yaml

    import launch

    job = yaml.safe_load((ROOT / "search_spaces" / "driver" / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]["rayClusterSpec"]
    head = spec["headGroupSpec"]
    (head_container,) = head["template"]["spec"]["containers"]
    assert head["rayStartParams"]["num-gpus"] == "0" and "nvidia.com/gpu" not in head_container["resources"]["limits"]
    workers = []
    for group in spec["workerGroupSpecs"]:
        (container,) = group["template"]["spec"]["containers"]
        limits = container["resources"]["limits"]
        workers += [Node(float(limits["cpu"]), float(limits["nvidia.com/gpu"]))] * group["replicas"]
        assert container["envFrom"] == head_container["envFrom"]  # every pod reaches the object store
    # the entrypoint is a command line launch.py takes, joining the job's cluster, writing to the object store
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["python", "launch.py"]
    verb, args = launch.parse(argv[2:])
    assert verb == "search" and args.address == "auto" and args.storage_path.startswith("s3://")
    # what each trial gets on that cluster, as its comment says: a GPU, and a worker's CPUs per GPU less one
    cluster = ClusterShape((Node(float(head_container["resources"]["limits"]["cpu"]), 0), *workers))
    assert launch.search_record(args, cluster).trial == TrialResources(7, 1)
