"""Executors: run a list of RunSpecs somewhere and yield their outcomes as they finish.

One small interface (``run(runs) -> iterator of RunOutcome``, ``close()``), two engines
(docs/design.md, decision 10): :class:`LocalExecutor`, a process pool on this machine, and
:class:`SubmititExecutor`, SLURM job arrays through submitit (or submitit's local
subprocess executor, for tests and debugging).
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

from deepobs.errors import ConfigurationError
from deepobs.tuner.runs import RunOutcome, RunSpec, execute_run

#: A run in flight when a worker process dies (killed, out of memory) is tried again;
#: after this many such deaths it is failed. (A dying worker breaks the whole pool, so
#: the runs beside it are counted too; hence more than one try.)
MAX_WORKER_DEATHS = 3


class Executor:
    """Interface of an executor."""

    #: Runs that can proceed at once (used to size Bayesian batches and ETA estimates).
    workers: int = 1

    def run(self, runs: list) -> Iterator[RunOutcome]:
        """Execute ``runs``; yield one outcome per run, in order of completion."""
        raise NotImplementedError

    def close(self) -> None:
        """Release workers; the executor cannot be used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class SerialExecutor(Executor):
    """Runs in this process, one after the other (the simplest, for scripts and tests)."""

    def run(self, runs: list) -> Iterator[RunOutcome]:
        """Execute the runs one after the other; yields their outcomes."""
        for spec in runs:
            yield execute_run(spec)


def available_cores() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _worker_init(worker_ids, devices: list, threads: int) -> None:
    """Set up one pool worker: its device, its CPU threads, and death with the parent."""
    import torch

    from deepobs.tuner import runs

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    worker_id = worker_ids.get()
    if devices:
        runs.WORKER_DEVICE = devices[worker_id % len(devices)]
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the runner keeps the worker's share

    def exit_with_sweep():
        # A worker orphaned by a killed sweep must not go on with a run that the resumed
        # sweep will want to run. The sentinel closes when the sweep process exits.
        sweep_process = multiprocessing.parent_process()
        if sweep_process is not None:
            sweep_process.join()
            os._exit(1)

    threading.Thread(target=exit_with_sweep, daemon=True).start()


class LocalExecutor(Executor):
    """A pool of ``workers`` processes on this machine.

    With GPUs, worker i uses ``cuda:i`` (modulo the number of GPUs); on CPU each worker
    gets ``max(1, cores // workers)`` threads so that the workers do not oversubscribe
    the cores. Workers are forked from a forkserver (safe after torch has run threads).
    A worker that dies is replaced; its run is tried again, and failed after
    ``MAX_WORKER_DEATHS`` deaths.

    Args:
        workers: number of worker processes.
        devices: device of each worker (default: one GPU each if GPUs exist, else CPU).
        threads: torch CPU threads per worker (default: cores // workers).
    """

    def __init__(self, workers: int = 1, devices: Optional[list] = None, threads: Optional[int] = None):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigurationError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers
        self.devices = list(devices) if devices is not None else _default_devices()
        self.threads = threads or max(1, available_cores() // workers)
        self._pool: Optional[futures.ProcessPoolExecutor] = None

    def _start_pool(self) -> futures.ProcessPoolExecutor:
        context = _worker_context()
        worker_ids = context.Queue()
        # A replaced worker takes a fresh id; ids wrap onto the devices.
        for worker_id in range(self.workers * 64):
            worker_ids.put(worker_id)
        self._pool = futures.ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_worker_init,
            initargs=(worker_ids, self.devices, self.threads))
        return self._pool

    def run(self, runs: list) -> Iterator[RunOutcome]:
        """Execute the runs on the process pool; yields outcomes as runs finish."""
        pending = list(runs)
        deaths: dict = {}
        try:
            while pending:
                pool = self._pool or self._start_pool()
                submitted = {pool.submit(execute_run, spec): spec for spec in pending}
                pending = []
                for future in futures.as_completed(submitted):
                    spec = submitted[future]
                    try:
                        yield future.result()
                    except futures.process.BrokenProcessPool:
                        deaths[id(spec)] = deaths.get(id(spec), 0) + 1
                        if deaths[id(spec)] >= MAX_WORKER_DEATHS:
                            yield RunOutcome(spec, "failed", error="the worker process died (killed or out of memory)")
                        else:
                            pending.append(spec)
                if pending:  # the pool broke: replace it, try the runs it lost again
                    self._terminate()
        except BaseException:
            self._terminate()
            raise

    def _terminate(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        # SIGTERM lets a run stop after its current step and save a checkpoint.
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()

    def close(self) -> None:
        """Shut the process pool down (waits for its workers)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _worker_context():
    """``forkserver`` with torch preloaded: workers start in milliseconds, forked from a
    clean server process that has run no threads and touched no GPU (forking the sweep
    process itself is unsafe once torch has run threads). ``spawn`` where there is no
    forkserver."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # torch._dynamo is what a first optimizer step imports (seconds); import it once.
    context.set_forkserver_preload(["deepobs.tuner.runs", "deepobs.runners.runner", "torch._dynamo"])
    return context


def _default_devices() -> list:
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # no usable CUDA: CPU workers
        count = 0
    return [f"cuda:{index}" for index in range(count)]


class _SubmititRun:
    """The callable each SLURM job runs. A run stopped by SIGTERM (SLURM's preemption
    signal, ``scancel --signal=TERM``, ``scontrol requeue``) has written its checkpoint;
    the job then requeues itself (``scontrol requeue``, the same job id) and exits without
    a result, so that SLURM starts it again and it resumes from the checkpoint. After
    ``max_requeues`` restarts, or where the job cannot be requeued, the interrupted
    outcome goes back to the driver, which submits the run again.

    Checkpointable for submitit: on its timeout signal (USR2) submitit requeues the job,
    which resumes from the checkpoint of the last epoch."""

    def __init__(self, max_requeues: int = 3):
        self.max_requeues = max_requeues

    def __call__(self, spec: RunSpec) -> RunOutcome:
        outcome = execute_run(spec)
        if outcome.extra.get("interrupted") and os.environ.get("SLURM_JOB_ID"):
            restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
            outcome.extra["slurm_restarts"] = restarts
            requeued, state = _requeue_this_job(restarts) if restarts < self.max_requeues else (False, None)
            if requeued:
                sys.exit(75)  # no result: SLURM runs the job again
            if state is not None and state != "RUNNING":  # scancel, or out of time: not for us to rerun
                outcome.extra["cancelled"] = True
                outcome.error = (f"stopped by SLURM (job state {state}: cancelled or out of time); its "
                                 "checkpoint is kept: run the sweep again to resume it")
        return outcome

    def checkpoint(self, spec: RunSpec):
        import submitit

        return submitit.helpers.DelayedSubmission(self, spec)


def _pythonpath_line() -> str:
    """The sbatch line that puts the folder holding this deepobs package first on PYTHONPATH."""
    import shlex

    import deepobs

    root = shlex.quote(str(Path(deepobs.__file__).resolve().parents[1]))
    return f'export PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}}'


def _requeue_this_job(restarts: int) -> tuple:
    """Requeue the SLURM job this process runs in, after a SIGTERM; returns (requeued,
    job state). SIGTERM comes with three meanings, told apart by the job's record:

    * SLURM requeues the job (preemption, ``scontrol requeue``): its restart count is
      already above ``restarts`` (this run's ``SLURM_RESTART_COUNT``): nothing to do;
    * a signal only (``scancel --signal=TERM``, a site's own preemption notice): the job
      is still RUNNING: ``scontrol requeue``;
    * ``scancel`` or the time limit: the job is ending (COMPLETING): it stays ended.
    """
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array_job}_{task}" if array_job and task else os.environ.get("SLURM_JOB_ID")
    if not job_id or shutil.which("scontrol") is None:
        return False, None
    try:
        shown = subprocess.run(["scontrol", "show", "job", "--oneliner", job_id], capture_output=True,
                               text=True, timeout=60).stdout
        fields = dict(item.split("=", 1) for item in shown.split() if "=" in item)
        state, now = fields.get("JobState"), int(fields.get("Restarts") or 0)
        if now > restarts:
            return True, state
        if state != "RUNNING":
            return False, state
        answer = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return False, None
    return answer.returncode == 0 or "pending execution" in answer.stderr.lower(), state


def _slurm_state_watcher(delay_s: float):
    """A submitit job-state watcher that also works without SLURM accounting.

    submitit asks ``sacct`` for the state of jobs that ended without a result (killed,
    out of memory); a cluster without slurmdbd (small clusters, scripts/slurm_local.sh)
    has no ``sacct``. Then ``squeue --states=all`` answers, and a job that squeue no
    longer lists has ended (state ``ENDED``)."""
    import getpass

    from submitit.slurm.slurm import SlurmInfoWatcher

    class Watcher(SlurmInfoWatcher):
        use_squeue = False

        def update(self) -> None:
            command = self._make_command()
            if command is None:
                return
            self._num_calls += 1
            if not self.use_squeue:
                try:
                    self._info_dict.update(self.read_info(
                        subprocess.run(command, capture_output=True, check=True, timeout=120).stdout))
                except subprocess.CalledProcessError:  # "Slurm accounting storage is disabled"
                    self.use_squeue = True
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if self.use_squeue:
                self._update_from_squeue()
            self._last_status_check = time.time()
            for job_id in self._registered - self._finished:
                if self.is_done(job_id, mode="cache"):
                    self._finished.add(job_id)

        def _update_from_squeue(self) -> None:
            try:
                listing = subprocess.run(
                    ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T",
                     f"--user={getpass.getuser()}"], capture_output=True, check=True, timeout=120).stdout
            except (OSError, subprocess.SubprocessError):
                return  # the controller does not answer now: ask again later
            info = self.read_info(b"JobID|State\n" + listing)
            for job_id in self._registered - self._finished:
                info.setdefault(job_id, {"JobID": job_id, "State": "ENDED"})
            self._info_dict.update(info)

    return Watcher(delay_s=delay_s)


#: Sweep-file keys of the ``slurm`` section -> submitit parameters.
SLURM_PARAMETERS = {
    "partition": "slurm_partition",
    "timeout_min": "timeout_min",
    "gpus_per_node": "gpus_per_node",
    "cpus_per_task": "cpus_per_task",
    "mem_gb": "mem_gb",
    "array_parallelism": "slurm_array_parallelism",
    "account": "slurm_account",
    "qos": "slurm_qos",
    "constraint": "slurm_constraint",
    "additional_parameters": "slurm_additional_parameters",
    "setup": "slurm_setup",
    "poll_seconds": None,  # deepobs-tune's own: how often job states are polled
}


class SubmititExecutor(Executor):
    """Runs as one SLURM job array per batch, through submitit.

    Args:
        folder: where submitit keeps job pickles and logs (``%j`` is the job id).
        cluster: ``None`` (SLURM if ``srun`` exists, else local), ``"slurm"``,
            ``"local"`` (a real subprocess per job) or ``"debug"`` (in this process).
        parameters: sweep-file style parameters (keys of ``SLURM_PARAMETERS``).
        poll_seconds: how often job states are polled.
        max_requeues: how often a run stopped by a signal (preemption: SLURM sends
            SIGTERM, the runner saves a checkpoint) is submitted again.
    """

    def __init__(self, folder, cluster: Optional[str] = None, parameters: Optional[dict] = None,
                 poll_seconds: float = 5.0, max_requeues: int = 3):
        try:
            import submitit
        except ImportError:
            raise ConfigurationError("the slurm executor needs submitit: pip install submitit") from None
        parameters = dict(parameters or {})
        poll_seconds = float(parameters.pop("poll_seconds", poll_seconds))
        unknown = sorted(set(parameters) - set(SLURM_PARAMETERS) - {"poll_seconds"})
        if unknown:
            raise ConfigurationError(
                f"unknown slurm parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SLURM_PARAMETERS))}")
        self.folder = Path(folder)
        self.executor = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=cluster)
        # Always explicit: submitit's local default is 2 minutes.
        parameters.setdefault("timeout_min", 60)
        converted = {SLURM_PARAMETERS[key]: value for key, value in parameters.items()}
        if self.executor.cluster == "slurm":
            # Requeueable, so that a preempted job comes back (and can requeue itself).
            converted["slurm_additional_parameters"] = {
                "requeue": True, **converted.get("slurm_additional_parameters", {})}
            # Jobs import the same deepobs as this driver (a checkout works without installing).
            converted["slurm_setup"] = [_pythonpath_line(), *converted.get("slurm_setup", [])]
        else:
            converted = {key: value for key, value in converted.items() if not key.startswith("slurm_")}
        self.executor.update_parameters(**converted)
        self.workers = int(parameters.get("array_parallelism") or 64)
        self.poll_seconds = poll_seconds
        self.max_requeues = max_requeues

    @property
    def cluster(self) -> str:
        """Where the jobs run: ``slurm``, ``local`` or ``debug``."""
        return self.executor.cluster

    def run(self, runs: list) -> Iterator[RunOutcome]:
        """Submit the runs as a job array; yields outcomes, requeueing preempted runs."""
        pending, requeues = list(runs), 0
        while pending:
            interrupted = []
            for outcome in self._run_array(pending):
                if (outcome.extra.get("interrupted") and requeues < self.max_requeues
                        and not outcome.extra.get("cancelled")
                        and outcome.extra.get("slurm_restarts", 0) < self.max_requeues):
                    interrupted.append(outcome.run)  # preempted: requeue, it resumes from its checkpoint
                else:
                    yield outcome
            pending, requeues = interrupted, requeues + 1

    def _run_array(self, runs: list) -> Iterator[RunOutcome]:
        import submitit

        jobs = self.executor.map_array(_SubmititRun(self.max_requeues), list(runs))
        if self.cluster == "slurm":
            watcher = _slurm_state_watcher(max(30.0, self.poll_seconds))
            for job in jobs:
                job.watcher = watcher
        specs = {job.job_id: spec for job, spec in zip(jobs, runs)}
        remaining = set(specs)
        try:
            for job in submitit.helpers.as_completed(jobs, poll_frequency=self.poll_seconds):
                remaining.discard(job.job_id)
                spec = specs[job.job_id]
                try:
                    outcome = job.result()
                except Exception as error:  # the job itself failed (killed, timed out, ...)
                    lines = [line for line in str(error).splitlines() if line.strip()]
                    outcome = RunOutcome(spec, "failed", error=f"job {job.job_id}: "
                                         f"{lines[-1].strip() if lines else type(error).__name__}",
                                         details=str(error))
                outcome.extra["job_id"] = job.job_id
                yield outcome
        except BaseException:
            # Interrupted: cancel what is still queued or running, so that a resubmitted
            # sweep does not run the same seeds twice.
            for job in jobs:
                if job.job_id in remaining:
                    try:
                        job.cancel(check=False)
                    except Exception:  # cancelling is best effort
                        pass
            raise


def make_executor(kind: str, workers: int = 1, folder=None, slurm: Optional[dict] = None,
                  threads: Optional[int] = None) -> Executor:
    """The executor named ``kind``: ``local`` (process pool), ``slurm`` (submitit job
    arrays), ``submitit-local`` (submitit, one local subprocess per job: checks a SLURM
    sweep without a cluster) or ``serial`` (this process)."""
    if kind == "local":
        return LocalExecutor(workers, threads=threads)
    if kind == "serial":
        return SerialExecutor()
    if kind in ("slurm", "submitit-local"):
        if folder is None:
            raise ConfigurationError(f"the {kind} executor needs a folder for its job files")
        if kind == "slurm" and shutil.which("sbatch") is None:
            raise ConfigurationError("the slurm executor needs sbatch on PATH (run deepobs-tune on a SLURM "
                                     "login node); use --executor local or --commands otherwise")
        return SubmititExecutor(folder, cluster="slurm" if kind == "slurm" else "local", parameters=slurm)
    raise ConfigurationError(f"unknown executor {kind!r}; allowed: {', '.join(EXECUTORS)}")


#: The executors make_executor knows.
EXECUTORS = ("local", "slurm", "submitit-local", "serial")
