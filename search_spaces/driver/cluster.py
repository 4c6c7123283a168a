"""What a search runs on: the Ray cluster's nodes, read after joining it, and what each trial asks of them.

The hardware defaults of a search (GPU or CPU, CPUs per trial) follow the cluster, never the machine
the driver runs on: on most real clusters the head node has no GPU (KubeRay's default, many SLURM
setups), so the driver's own ``torch.cuda.device_count()`` or ``os.cpu_count()`` says nothing about
where the trials will run.

- GPUs anywhere in the cluster: a trial takes one GPU (``--gpus-per-trial`` wins), and as many CPUs
  as the GPU nodes have per trial slot, one CPU per node left to Ray's own processes when a node has
  it to spare; the node with the fewest CPUs per slot sets the figure, so every GPU can hold a trial.
- No GPU: one CPU per trial (``--cpus-per-trial`` wins).

A trial that no node can hold would wait for ever (Ray keeps it pending): ``check_fits`` refuses it
before the search starts, naming what it asks for and the largest node there is. An autoscaling
cluster that would add such a node on demand is refused all the same: pass the resources its nodes
will have once they are up by starting one first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainable.errors import UserError

__all__ = ["ClusterShape", "Node", "TrialResources"]


@dataclass(frozen=True)
class Node:
    """One alive node of the cluster, as Ray counts its resources."""

    cpus: float
    gpus: float
    address: str = ""  # its IP, as Ray names it

    def fits(self, cpus: float, gpus: float) -> bool:
        # a fraction of a GPU must fit on one GPU; Ray places a trial of several GPUs on whole ones
        return self.cpus >= cpus and self.gpus >= gpus

    def slots(self, gpus_per_trial: float) -> int:
        """How many trials of ``gpus_per_trial`` GPUs its GPUs hold."""
        return math.floor(self.gpus / gpus_per_trial + 1e-9) if gpus_per_trial > 0 else 0


@dataclass(frozen=True)
class TrialResources:
    """What each trial asks Ray for, and whether the hardware defaults are the GPU ones."""

    cpus: float
    gpus: float

    @property
    def kind(self) -> str:
        """The key of the hardware defaults (``search_spaces.hardware.HARDWARE``) these resources call for."""
        return "gpu" if self.gpus > 0 else "cpu"


@dataclass(frozen=True)
class ClusterShape:
    """The alive nodes of a Ray cluster."""

    nodes: tuple[Node, ...]

    @classmethod
    def from_ray(cls) -> ClusterShape:
        """The cluster this process has joined (``ray.init`` first)."""
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        return cls(tuple(Node(cpus=float(n["Resources"].get("CPU", 0)), gpus=float(n["Resources"].get("GPU", 0)),
                              address=n.get("NodeManagerAddress", "")) for n in nodes))

    @property
    def cpus(self) -> float:
        return sum(n.cpus for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n.gpus for n in self.nodes)

    @property
    def gpu_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.gpus > 0)

    def describe(self) -> str:
        """e.g. "3 nodes, 17 CPUs, 2 GPUs (on 2 nodes)"."""
        where = f" (on {_count(len(self.gpu_nodes), 'node')})" if self.gpus else ""
        return f"{_count(len(self.nodes), 'node')}, {_count(self.cpus, 'CPU')}, {_count(self.gpus, 'GPU')}{where}"

    def trial_resources(self, cpus_per_trial: float | None, gpus_per_trial: float | None) -> TrialResources:
        """Each trial's CPUs and GPUs: the flags where given, else the cluster's defaults (module doc)."""
        gpus = (1.0 if self.gpus else 0.0) if gpus_per_trial is None else float(gpus_per_trial)
        if cpus_per_trial is not None:
            return TrialResources(float(cpus_per_trial), gpus)
        shares = [_cpus_per_slot(n, n.slots(gpus)) for n in self.gpu_nodes if n.slots(gpus)] if gpus else []
        return TrialResources(float(min(shares)) if shares else 1.0, gpus)

    def trial_slots(self, trial: TrialResources) -> int:
        """How many such trials the cluster runs at once."""
        def on(node: Node) -> int:
            by_cpu = math.floor(node.cpus / trial.cpus + 1e-9) if trial.cpus else math.inf
            by_gpu = node.slots(trial.gpus) if trial.gpus else math.inf
            return 0 if by_cpu == by_gpu == math.inf else min(by_cpu, by_gpu)
        return sum(on(n) for n in self.nodes)

    def check_fits(self, trial: TrialResources) -> None:
        """Refuse resources that no node can give one trial: Ray would keep such a trial waiting for ever."""
        if any(n.fits(trial.cpus, trial.gpus) for n in self.nodes):
            return
        largest = max(self.nodes, key=lambda n: (n.gpus, n.cpus), default=Node(0, 0))
        where = f" ({largest.address})" if largest.address else ""
        raise UserError(f"each trial asks for {trial.cpus:g} CPU and {trial.gpus:g} GPU, but no node of the cluster "
                        f"({self.describe()}) has that much; the largest has {largest.cpus:g} CPU and "
                        f"{largest.gpus:g} GPU{where}: lower --cpus-per-trial or --gpus-per-trial, or add a node "
                        f"that fits")

    def notes(self, trial: TrialResources) -> list[str]:
        """What a user should know before trials start: GPUs that the search leaves idle."""
        if self.gpus and not trial.gpus:
            return [f"the cluster has {self.gpus:g} GPUs but each trial uses none (--gpus-per-trial 0): the search "
                    f"trains on CPUs only, with the CPU defaults"]
        return []


def _cpus_per_slot(node: Node, slots: int) -> int:
    """A node's CPUs shared among its trial slots, one left to Ray when that costs no slot a CPU."""
    spare = node.cpus - 1 if node.cpus - 1 >= slots else node.cpus
    return max(1, math.floor(spare / slots + 1e-9))


def _count(n: float, noun: str) -> str:
    return f"{n:g} {noun}{'' if n == 1 else 's'}"
