"""The state of one pytest run, kept in `config.stash`: settings, catalog, targets, observations.

Everything that touches the network is lazy: nothing happens at import, configure or --help time; the
simulators start and the servers are contacted when the first test needs them.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import pickle
import time
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest

from . import implementations, prometheus
from .catalog import Catalog
from .cluster_readers import read_consumers
from .consumers import from_cluster, unique, with_recorded
from .engines import Engine
from .kube import ClusterInfo
from .observe import Observation, Stage, observe
from .outcome import Problem
from .readers import Reader
from .series import default_wait
from .settings import Settings
from .shard import in_shard
from .targets import (
    Balancing,
    DataParallel,
    Target,
    TargetSource,
    metrics_location,
    sim_target_names,
    url_targets,
)

RUN_KEY = pytest.StashKey["Run"]()


@dataclass
class PrometheusState:
    prom: prometheus.Prometheus
    held: dict[str, prometheus.Held] = field(default_factory=dict)  # per target: the synced counter
    error: str | None = None
    waited: float = 0.0  # the bound of the wait for Prometheus to catch up with the workload
    _panels_until: float | None = field(default=None, repr=False)

    def panel_wait(self) -> float:
        """What is left of the one wait every panel shares: a lagging Prometheus costs the run one bound (two
        scrape intervals), not one per panel. It starts with the first panel judged."""
        if self._panels_until is None:
            self._panels_until = time.monotonic() + self.waited
        return max(self._panels_until - time.monotonic(), 0.0)


class Run:
    def __init__(self, settings: Settings, catalog: Catalog, panels: list[Reader] | None = None,
                 consumers: list[Reader] | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.panels = panels or []
        # alerting/recording rules, scalers, the EPP's flags (consumers.py): judged as panels, not drawn as them
        self.consumers: list[Reader] = list(consumers or [])
        self._consumers_read = False
        self._prometheus: PrometheusState | None = None
        self._targets: list[Target] | None = None
        self._kube: tuple[ClusterInfo, list[Target]] | None = None
        self._observations: dict[str, Observation] | None = None
        self._sim_host: object | None = None
        # Under pytest-xdist: in a worker, the targets it observed itself (not read from another worker); in the
        # controller, what the workers said of the targets they observed, by position (see `implementations`).
        self._observed_here: set[str] = set()
        self._frozen = False  # see keep()
        self.worker_implementations: dict[int, dict[str, Any]] | None = None

    def fleet_names(self) -> list[str]:
        """Names of every target of the run, whatever shard checks it (see target_names)."""
        return in_shard(*self._names(), None, None)

    def target_names(self) -> list[str]:
        """Names of the targets this run checks (--vllm-shard: its slice of the fleet), for test ids at collection.
        URLs and simulators need no network; a namespace is discovered here (once), since its pods are the test
        ids."""
        return in_shard(*self._names(), self.settings.vllm_shard, self.settings.vllm_namespace)

    def _names(self) -> tuple[list[str], list[str]]:
        settings = self.settings
        plain = [t.name for t in url_targets(settings.vllm_url, settings.vllm_arch)]
        plain += sim_target_names(settings.vllm_sim)
        return plain, [t.name for t in self.kube_targets()]

    def targets(self) -> list[Target]:
        if self._targets is None:
            settings = self.settings
            targets = url_targets(settings.vllm_url, settings.vllm_arch, settings.vllm_engine)
            if settings.vllm_sim:
                targets += self._start_simulators()
            mine = set(self.target_names())
            self._targets = [t for t in targets + self.kube_targets() if t.name in mine]
        return self._targets

    def read_cluster_consumers(self) -> None:
        """Add what reads the metrics in the cluster (PrometheusRules, dashboard ConfigMaps, KEDA scalers,
        prometheus-adapter rules, the endpoint picker's flags) to the panels and consumers, once, at collection
        (their test ids are needed then). A read that is refused is a note of the cluster, never a stop."""
        cluster = self.cluster()
        if self._consumers_read or cluster is None:
            return
        self._consumers_read = True

        objects = read_consumers(cluster, self.settings.grafana_namespace, self.settings.vllm_timeout)
        panels, consumers, notes = from_cluster(objects, cluster.namespace)
        cluster.notes.extend(notes)
        self.panels, self.consumers = with_recorded(unique(self.panels + panels), unique(self.consumers + consumers))

    def cluster(self) -> ClusterInfo | None:
        """The cluster, if discovery ran and succeeded (never discovers again for a report)."""
        return self._kube[0] if self._kube is not None else None

    def kube_targets(self) -> list[Target]:
        settings = self.settings
        if not settings.vllm_namespace:
            return []
        if self._kube is None:
            from .kube import DiscoveryError, discover  # the kubernetes client loads only for a namespace

            try:
                self._kube = discover(
                    namespace=settings.vllm_namespace, selector=settings.vllm_selector,
                    container=settings.vllm_container, port=settings.vllm_port, kubeconfig=settings.kubeconfig,
                    context=settings.kube_context, transport=settings.vllm_transport, timeout=settings.vllm_timeout,
                )
            except DiscoveryError as exc:
                raise pytest.UsageError(str(exc)) from None
        return self._kube[1]

    def _start_simulators(self) -> list[Target]:
        from .sim import SimHost, get_profile  # the simulator's server stack, imported only when used

        host = SimHost()
        self._sim_host = host
        targets = []
        mine = set(self.target_names())  # another shard's simulators are not started
        for name, profile_name in zip(sim_target_names(self.settings.vllm_sim), self.settings.vllm_sim,
                                      strict=True):
            if name not in mine:
                continue
            profile = get_profile(profile_name)
            if self.settings.vllm_api_key:
                profile = profile.replace(api_key=self.settings.vllm_api_key)
            sim = host.start(profile)
            # a data-parallel profile is a server started with --data-parallel-hybrid-lb: its engines are known
            data_parallel = DataParallel(size_local=profile.data_parallel_size_local,
                                         start_rank=profile.data_parallel_start_rank, balancing=Balancing.HYBRID) if (
                profile.data_parallel_size_local > 1 or profile.data_parallel_start_rank) else None
            engine = Engine(profile.engine)
            simulated = "simulated vLLM" if engine is Engine.VLLM else f"simulated {engine}"
            targets.append(Target(name=name, base_url=sim.url, arch=profile.arch, source=TargetSource.SIM,
                                  detail={"profile": profile.name, simulated: profile.version},
                                  data_parallel=data_parallel,
                                  engine_version=profile.version if engine is not Engine.VLLM else None,
                                  # the simulator serves every engine's page on its one port
                                  **metrics_location(engine, partial(_same_port, sim.url))))
        return targets

    def observations(self, shared: Path | None = None, worker: tuple[int, int] = (0, 1)) -> dict[str, Observation]:
        """The one observation of the session. Under pytest-xdist (`shared`: a path in the directory the workers
        share; `worker`: this worker's index and the count), the servers are dealt into one slice per worker:
        each worker observes its own slice and leaves it there, then reads the others' (or observes a slice whose
        worker never asked for it). Every server sees one workload per session, and the workers share the work."""
        if self._observations is None:
            self.keep()  # the modules and the collected tests, scanned again at every full collection while observing
            if shared is None:
                self._observations = asyncio.run(observe(self.targets(), self.settings))
            else:
                self._observations = self._observe_shared(shared, *worker)
            self.keep()
        return self._observations

    def keep(self) -> None:
        """Take what the session holds until its end (what it loaded and collected, the observation, the report's
        rows) out of the garbage collector's full scans: a fleet's objects cost each scan ~0.1 s, and a heap that
        grows triggers several (~1 s a process at 1,000 servers). close() gives them back."""
        gc.collect(1)  # the young garbage first (cheap), not kept with them
        gc.freeze()
        self._frozen = True

    def _observe_shared(self, shared: Path, index: int, count: int) -> dict[str, Observation]:
        targets = self.targets()
        slices = [targets[start::count] for start in range(count)]
        observed: dict[str, Observation] = {}
        for turn in range(count):  # its own slice first, then the others in turn
            mine = (index + turn) % count
            observed.update(self._observe_slice(shared.with_name(f"{shared.name}.{mine}"), slices[mine]))
        return {target.name: observed[target.name] for target in targets}  # in the run's order

    def _observe_slice(self, path: Path, targets: list[Target]) -> dict[str, Observation]:
        from filelock import FileLock, Timeout  # only under pytest-xdist

        # Every stage of every target is bounded; this bounds the wait for the worker that observes a slice.
        rounds = -(-max(len(targets), 1) // self.settings.vllm_concurrency)
        bound = rounds * (4 * self.settings.vllm_timeout + self.settings.vllm_phase_timeout) + 60
        try:
            with FileLock(f"{path}.lock", timeout=bound):
                if path.exists():
                    stored: dict[str, Observation] = pickle.loads(path.read_bytes())
                    mine = {target.name: target for target in targets}
                    return {name: replace(obs, target=mine.get(name, obs.target)) for name, obs in stored.items()}
                observed = asyncio.run(observe(targets, self.settings))
                self._observed_here.update(observed)
                # Connection options (TLS contexts, credentials) stay in this process.
                portable = {name: replace(obs, target=replace(obs.target, client_options={}))
                            for name, obs in observed.items()}
                path.write_bytes(pickle.dumps(portable))
                return observed
        except Timeout:
            problem = Problem(f"another pytest-xdist worker did not finish observing its servers within {bound:g} s; "
                              f"rerun, or without -n.")
            return {t.name: Observation(Target(name=t.name, base_url=""), errors={Stage.BEFORE: problem})
                    for t in targets}

    def implementations(self) -> list[dict[str, Any]]:
        """Per observed target: what the reports say of it (version, model, architecture, features, ...)."""
        if self.worker_implementations is not None:  # the controller of pytest-xdist: the workers observed
            return [self.worker_implementations[position] for position in sorted(self.worker_implementations)]
        return implementations.of(self.observed().values(), self.cluster())

    def implementations_observed_here(self) -> list[tuple[int, dict[str, Any]]]:
        """A pytest-xdist worker's part of `implementations`: (position among the run's targets, what the reports
        say of it) for each target this worker observed itself. Every target is observed by one worker, so the
        controller puts the parts together, and no worker describes the whole fleet."""
        positions = {target.name: n for n, target in enumerate(self.targets())}
        here = [obs for name, obs in self.observed().items() if name in self._observed_here]
        return list(zip([positions[obs.target.name] for obs in here], implementations.of(here, self.cluster()),
                        strict=True))

    def add_worker_implementations(self, part: list[tuple[int, dict[str, Any]]]) -> None:
        """The controller of pytest-xdist: one worker's part of `implementations`."""
        if self.worker_implementations is None:
            self.worker_implementations = {}
        self.worker_implementations.update((position, found) for position, found in part)

    def prometheus(self) -> PrometheusState:
        """The Prometheus of --prometheus-url, synced with the workload once (bounded by its scrape interval)."""
        if self._prometheus is None:
            settings = self.settings
            assert settings.prometheus_url is not None
            prom = prometheus.from_settings(settings.prometheus_url, settings.prometheus_token_env,
                                            str(settings.prometheus_ca) if settings.prometheus_ca else None,
                                            settings.prometheus_insecure, settings.vllm_timeout)
            state = PrometheusState(prom)
            try:
                # synced on a vLLM counter: other engines' targets are only checked for being scraped
                observed = [o for o in self.observations().values()
                            if o.after is not None and o.target.engine is Engine.VLLM]
                state.waited = min(default_wait(prometheus.scrape_interval(prom)), settings.vllm_phase_timeout)
                state.held = prometheus.wait_until_synced(prom, observed, state.waited)
            except prometheus.PrometheusError as exc:
                state.error = str(exc)
            self._prometheus = state
        return self._prometheus

    def observed(self) -> dict[str, Observation]:
        """The observations if the session made them (a run with no conformance test made none)."""
        return self._observations or {}

    def close(self, process_ends: bool = False) -> None:
        """Free what the session held. `process_ends`: the process ends with the session (a pytest-xdist worker's
        does), so what is left stays out of the garbage collector's scans, and the interpreter's exit does not scan
        it again (~0.3 s at 1,000 servers, which the controller waits for); otherwise it is given back."""
        # Freed here, not at exit: the interpreter's own teardown of a fleet's observations is far slower
        # (~0.5 s at 100 pods). Empty, not None, so that nothing observes the servers again.
        self._observations = {}
        if self._prometheus is not None:
            self._prometheus.prom.close()
            self._prometheus = None
        if self._sim_host is not None:
            self._sim_host.close()  # type: ignore[attr-defined]
            self._sim_host = None
        if self._frozen and process_ends:
            gc.freeze()
        elif self._frozen:
            gc.unfreeze()
            _freeze_at_exit()
        self._frozen = False


@cache  # once per process, however many sessions it runs
def _freeze_at_exit() -> None:
    """At the interpreter's exit, take the heap out of the collector's scans: its teardown otherwise scans the
    session's leftovers again (~0.5 s at 1,000 servers). A process that goes on after the session (pytest run
    in-process) loses nothing: this runs only as it exits."""
    atexit.register(gc.freeze)


def _same_port(url: str, port: int) -> str:
    return url


def conformance_dir() -> Path:
    """Where the bundled suite lives (inside the installed package)."""
    import importlib.util

    spec = importlib.util.find_spec("pytest_vllm_metrics.conformance")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))
