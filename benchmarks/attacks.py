"""The long attack loops of issue 29: kill ``densflow run`` at random moments and
``--resume``; fill the disk under it; print a table of tries / held / failed.

Run from the repository root (a few minutes per 10 tries of each attack)::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/attacks.py --tries 10

Attacks (cases in ``benchmarks/attack_cases/``):

* ``kill grid gradient`` / ``kill grid newton``: ``densflow run grid_1d.py`` (with
  ``--method``) is sent SIGKILL after a random time between its start-up and the
  undisturbed run's duration, and with probability 1/3 its first ``--resume`` is killed too; the final
  ``--resume`` must exit 0, leave no temporary file, and give a run file whose every
  run holds the same histories (times aside), snapshots, final density, messages and
  monitors, bit for bit, as the undisturbed run's;
* ``kill parametric fresh batches``: the same with ``vi_fresh.py`` (Gaussian VI, fresh
  batches; the generator state recorded with each snapshot makes the resume exact);
* ``disk full``: the run writes to a tiny filesystem (a tmpfs of a random size from 16
  KiB to 1.5 times the run file, mounted for the run when this runs as root; else a file
  size limit, ``RLIMIT_FSIZE``). It must exit 0, or 2 with one line on stderr, leave no
  temporary file and a file that is absent or opens; with room again, ``--resume`` must
  complete it bit for bit.

A try *holds* when every condition holds; the table lists the first reasons of the
others. The machine is shared: the times of the kills vary, the outcome must not.
"""

import argparse
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASES = Path(__file__).resolve().parent / "attack_cases"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           OMP_NUM_THREADS="1")
#: Attributes that legitimately differ between an undisturbed and a resumed run.
VOLATILE = {"started", "finished", "wall_time", "resumed_from", "created", "status_time",
            "case_file"}


def densflow(*args, timeout=600, preexec=None):
    """Run ``densflow ARGS`` to completion: ``(returncode, stdout, stderr)``."""
    proc = subprocess.run([sys.executable, "-m", "densflow", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)
    return proc.returncode, proc.stdout, proc.stderr


def killed_after(seconds, *args):
    """Start ``densflow ARGS`` and SIGKILL it after ``seconds`` (if still running)."""
    proc = subprocess.Popen([sys.executable, "-m", "densflow", *map(str, args)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _content(path):
    """Everything of a run file that a resume must reproduce, as {name: value}."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                if name.rsplit("/", 1)[-1] != "times":
                    out[name] = obj[()]
            for key, value in obj.attrs.items():
                if key not in VOLATILE:
                    out[f"{name}@{key}"] = value
        f.visititems(visit)
    return out


def differences(path, reference):
    """The names whose values differ between two run files (empty: bit for bit)."""
    a, b = _content(path), _content(reference)
    bad = sorted(set(a) ^ set(b))
    for key in set(a) & set(b):
        x, y = np.asarray(a[key]), np.asarray(b[key])
        numeric = x.dtype.kind in "fc" and y.dtype.kind in "fc"
        if not np.array_equal(x, y, equal_nan=numeric):  # NaN settings (gtol) are equal
            bad.append(key)
    return bad


def leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if ".tmp-" in p.name]


class Tally:
    def __init__(self, name):
        self.name, self.tries, self.held, self.reasons = name, 0, 0, []

    def add(self, reason):
        self.tries += 1
        if reason is None:
            self.held += 1
        else:
            self.reasons.append(reason)


def kill_resume(tally, case, extra, reference, window, work, rng):
    path = work / "t.h5"
    if path.exists():
        path.unlink()
    killed_after(rng.uniform(*window), "run", case, "-o", path, "-q", *extra)
    if rng.random() < 1 / 3:
        killed_after(rng.uniform(*window), "run", case, "-o", path, "--resume", "-q", *extra)
    code, _, err = densflow("run", case, "-o", path, "--resume", "-q", *extra)
    if code != 0:
        return tally.add(f"resume exited {code}: {err.strip()[:120]}")
    if leftovers(work):
        return tally.add(f"temporary files left: {leftovers(work)}")
    diff = differences(path, reference)
    tally.add(f"differs in {diff[:3]}" if diff else None)


class TinyDisk:
    """A folder whose filesystem holds ``size`` bytes: a tmpfs mounted there (as root),
    or an ``RLIMIT_FSIZE`` for the child process otherwise."""

    def __init__(self, folder):
        self.folder = folder
        self.mounted = False
        self.limit = None

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and shutil.which("mount"):
            ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(self.folder)],
                                capture_output=True).returncode == 0
            self.mounted = ok
        return self

    @property
    def how(self):
        return "tmpfs" if self.mounted else "RLIMIT_FSIZE"

    def resize(self, size):
        if self.mounted:
            subprocess.run(["mount", "-o", f"remount,size={size}", str(self.folder)], check=True)
        else:
            self.limit = size

    def preexec(self):
        if self.mounted or self.limit is None:
            return None
        limit = self.limit

        def apply():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        return apply

    def __exit__(self, *exc):
        if self.mounted:
            subprocess.run(["umount", str(self.folder)], capture_output=True)


def disk_full(tally, disk, case, reference, rng):
    path = disk.folder / "t.h5"
    disk.resize(64 * 1024 * 1024)
    for p in disk.folder.iterdir():
        p.unlink()
    size = int(rng.uniform(16 * 1024, 1.5 * reference.stat().st_size))
    disk.resize(size)
    code, _, err = densflow("run", case, "-o", path, "-q", preexec=disk.preexec())
    if code not in (0, 2):
        return tally.add(f"size {size}: exit {code}: {err.strip()[-120:]}")
    if code == 2 and (err.count("\n") != 1 or "Traceback" in err):
        return tally.add(f"size {size}: not one line: {err.strip()[-120:]}")
    if leftovers(disk.folder):
        return tally.add(f"size {size}: temporary files left: {leftovers(disk.folder)}")
    if path.exists():
        icode, _, ierr = densflow("inspect", path)
        if icode != 0:
            return tally.add(f"size {size}: the file left does not open: {ierr.strip()[:120]}")
    disk.resize(64 * 1024 * 1024)
    disk.limit = None
    code, _, err = densflow("run", case, "-o", path, "--resume", "-q")
    if code != 0:
        return tally.add(f"size {size}: resume exited {code}: {err.strip()[:120]}")
    diff = differences(path, reference)
    tally.add(f"size {size}: differs in {diff[:3]}" if diff else None)


def reference_run(case, extra, work):
    """The undisturbed run file and the window of kill times: from the start-up (the time
    ``densflow inspect`` of the file takes: Python, densflow, h5py; at least 30 % of the
    run, as the parametric case's imports take longer) to the run's end."""
    path = work / f"ref-{case.stem}{''.join(extra).replace('-', '')}.h5"
    if path.exists():
        return path, None
    start = time.perf_counter()
    code, _, err = densflow("run", case, "-o", path, "-q", *extra)
    if code != 0:
        raise SystemExit(f"the undisturbed run of {case.name} failed: {err}")
    duration = time.perf_counter() - start
    start = time.perf_counter()
    densflow("inspect", path)
    return path, (max(time.perf_counter() - start, 0.3 * duration), duration)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tries", type=int, default=10, help="tries of each attack (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["kill", "disk"], help="run one family of attacks")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    tallies = []
    with tempfile.TemporaryDirectory(prefix="densflow-attacks-") as tmp:
        work = Path(tmp)
        grid, vi = CASES / "grid_1d.py", CASES / "vi_fresh.py"
        if args.only in (None, "kill"):
            for name, case, extra in (("kill grid gradient", grid, ()),
                                      ("kill grid newton", grid, ("--method", "newton")),
                                      ("kill parametric fresh batches", vi, ())):
                ref, window = reference_run(case, extra, work)
                tally = Tally(name)
                folder = work / name.replace(" ", "_")
                folder.mkdir()
                for _ in range(args.tries):
                    kill_resume(tally, case, extra, ref, window, folder, rng)
                    print(f"  {name}: {tally.tries} tries, {tally.held} held", file=sys.stderr,
                          flush=True)
                tallies.append(tally)
        if args.only in (None, "disk"):
            ref, _ = reference_run(grid, (), work)
            with TinyDisk(work / "tiny") as disk:
                tally = Tally(f"disk full ({disk.how})")
                for _ in range(args.tries):
                    disk_full(tally, disk, grid, ref, rng)
                    print(f"  {tally.name}: {tally.tries} tries, {tally.held} held",
                          file=sys.stderr, flush=True)
                tallies.append(tally)
    width = max(len(t.name) for t in tallies)
    print(f"{'attack':{width}s}  tries  held  failed")
    for t in tallies:
        print(f"{t.name:{width}s}  {t.tries:5d}  {t.held:4d}  {t.tries - t.held:6d}")
    for t in tallies:
        for reason in t.reasons[:5]:
            print(f"  {t.name}: {reason}")
    return 0 if all(t.held == t.tries for t in tallies) else 1


if __name__ == "__main__":
    sys.exit(main())
