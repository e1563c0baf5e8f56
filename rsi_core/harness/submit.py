"""``rsi submit``: a claims run as one job array of work units and a claims job after it, on
submitit (the optional ``[slurm]`` extra).

Task k of the array renders units k, k + N, ... of the run's plan (``rsi fz --unit k/N``); a
preempted or timed-out task is requeued (submitit's checkpoint: the task resubmits itself, and
its batch resumes from the render's own checkpoint). The claims job runs ``rsi run
--require-cached``: on SLURM it waits for the array with ``afterok``; the local and debug
executors have no dependencies, so ``rsi submit`` waits for the array itself and then submits it.
"""
from __future__ import annotations

import sys

try:
    from submitit.helpers import Checkpointable
except ImportError:  # the [slurm] extra is optional: rsi submit says how to install it
    Checkpointable = object


class Task(Checkpointable):
    """``rsi ARGV`` in the job; a failure (exit status not 0) fails the job. Requeued as it is
    when preempted (``Checkpointable``): everything it did is in the cache."""

    def __init__(self, argv: list[str]):
        self.argv = argv

    def __call__(self) -> int:
        from rsi_core.harness.cli import main
        code = main(self.argv)
        if code:
            raise RuntimeError(f"rsi {' '.join(self.argv)} exited {code}")
        return code


def _argv(values: dict, names) -> list[str]:
    from rsi_core.harness.options import OPTIONS
    out = []
    for name in names:
        opt, value = OPTIONS[name], values.get(name)
        if value in (None, False, []):
            continue
        if opt.flag:
            out.append(f"--{name}")
        elif opt.repeat:
            out += [x for v in value for x in (f"--{name}", str(v))]
        else:
            out += [f"--{name}", str(value)]
    return out


def submit(values: dict, n_units: int, tasks: int, executor: str, folder, parallel: int, gpus: int,
           timeout_min: int, partition: str | None = None, wait: bool = False, batch_size: int | None = None) -> int:
    """Submit ``tasks`` unit tasks as one array and the claims job; print the job ids."""
    try:
        import submitit
    except ImportError:
        raise ValueError("rsi submit needs submitit: pip install 'rsi[slurm]'") from None
    from rsi_core.harness.options import RUN_OPTIONS
    from rsi_core.harness.plan import PLAN_OPTIONS
    n = max(1, min(tasks or n_units, n_units))
    ex = submitit.AutoExecutor(folder=folder, cluster=None if executor == "slurm" else executor)
    params = {"timeout_min": timeout_min, "slurm_array_parallelism": parallel, "name": "rsi-fz"}
    if executor == "slurm":
        params.update(gpus_per_node=gpus, tasks_per_node=1, slurm_signal_delay_s=120,
                      **({"slurm_partition": partition} if partition else {}))
    ex.update_parameters(**params)
    units = _argv(values, PLAN_OPTIONS) + (["--batch-size", str(batch_size)] if batch_size else [])
    with ex.batch():
        array = [ex.submit(Task(["fz", *units, "--unit", f"{k}/{n}"])) for k in range(n)]
    print(f"rsi submit: {n} unit tasks (array {array[0].job_id.split('_')[0]}: {', '.join(j.job_id for j in array)})")
    claims = ["run", *_argv({**values, "require-cached": True}, RUN_OPTIONS)]
    if executor == "slurm":
        ex.update_parameters(name="rsi-claims", slurm_additional_parameters={"dependency": f"afterok:{array[0].job_id.split('_')[0]}"})
    else:  # no dependencies here: the claims job starts when every unit task succeeded
        ex.update_parameters(name="rsi-claims")
        failed = _failed(array)
        if failed:
            print(f"rsi submit: {failed}; no claims job submitted (rerun rsi submit: finished units are kept)",
                  file=sys.stderr)
            return 1
    job = ex.submit(Task(claims))
    print(f"rsi submit: claims job {job.job_id} (rsi {' '.join(claims)}); logs in {folder}")
    if wait:
        failed = _failed([job])
        print(f"rsi submit: {failed}" if failed else f"rsi submit: claims job {job.job_id} done",
              file=sys.stderr if failed else sys.stdout)
        return 1 if failed else 0
    return 0


def _failed(jobs) -> str:
    """'' when every job succeeded (waiting for them), else which failed and where its log is."""
    for job in jobs:
        try:
            job.result()
        except Exception as exc:  # submitit's FailedJobError / UncompletedJobError
            return f"job {job.job_id} failed ({' '.join(str(exc).split())[:200]}); its log: {job.paths.stderr}"
    return ""
