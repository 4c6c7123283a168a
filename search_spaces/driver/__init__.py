"""The search driver: a search space run as a Ray Tune experiment.

    start_ray(None)
    cluster = ClusterShape.from_ray()
    record = new_record("augmentation", name="aug-1", cluster=cluster)
    exp_dir = create_experiment(record, "experiments")
    outcome = run_search(exp_dir, record, restore=False)

``record`` holds the typed experiment record and the hardware defaults; ``cluster`` reads the
nodes of the Ray cluster and resolves what each trial gets; ``tuner`` builds the Tuner
(ASHA + Optuna TPE); ``progress`` what a user watches; ``searcher`` is the Optuna coupling (scheduler-stopped
trials told as PRUNED); ``storage`` the file system through which Ray replaces every file whole;
``session`` starts or joins Ray and checks the storage; ``search`` runs a search from its checks to
its settled end, with Ctrl-C as a resumable stop.

It lives inside ``search_spaces/`` because the project's top level is fixed (``search_spaces/``,
``trainable/``, ``analysis/``, ``launch.py``), and it is a package of its own so that the space
modules beside it stay plain declarations: they import the config and ``search_spaces.base`` only,
and nothing in them imports the driver. Imports flow ``launch.py`` -> ``analysis`` -> the driver ->
the spaces -> ``trainable``.
"""

from search_spaces.driver.cluster import ClusterShape, TrialResources
from search_spaces.driver.progress import progress_reporter
from search_spaces.driver.record import RECORD_VERSION, ExperimentRecord, new_record, read_record
from search_spaces.driver.search import SearchOutcome, create_experiment, describe, preflight, run_search, settle
from search_spaces.driver.searcher import PrunedOptunaSearch, journal_storage, make_searcher, skip_finished_trials
from search_spaces.driver.session import check_storage, start_ray
from search_spaces.driver.storage import storage_filesystem
from search_spaces.driver.tuner import RAY_SETTINGS, REUSE_ON_OWN_INSTANCE, build_tuner

__all__ = [
    "RAY_SETTINGS",
    "RECORD_VERSION",
    "REUSE_ON_OWN_INSTANCE",
    "ClusterShape",
    "ExperimentRecord",
    "PrunedOptunaSearch",
    "SearchOutcome",
    "TrialResources",
    "build_tuner",
    "check_storage",
    "create_experiment",
    "describe",
    "journal_storage",
    "make_searcher",
    "new_record",
    "preflight",
    "progress_reporter",
    "read_record",
    "run_search",
    "settle",
    "skip_finished_trials",
    "start_ray",
    "storage_filesystem",
]
