"""``dfnb run CHAPTER --nproc N``: the chapter in N papermill kernels under torchrun, its trainings data-parallel.

A notebook runs in one kernel, and a kernel is one process, so torchrun cannot start "the
training" of a chapter on its own: it starts N processes of :func:`main`, each executing the whole
chapter with papermill in its own kernel.  The kernels inherit torchrun's ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``, so every
``dfnb.engine.fit`` of the chapter joins one process group (gloo on CPU, NCCL on CUDA, each process
on ``cuda:LOCAL_RANK``), shards every epoch over the processes (``batch_size`` stays the global batch:
each process takes ``batch_size / N``) and averages the gradients.  Everything else in the chapter
(data, evaluation, tables, figures) runs identically in every process.  Rank 0 records the run: its
executed notebook and, through ``dfnb.runner.start``, the run directory; cached experiments and
evaluations are written by rank 0 only (``dfnb.experiments``).  The other ranks record into a scratch
folder (``$DFNB_RANK_SCRATCH``) that is removed when they finish.

The same by hand, without ``dfnb run`` (``params.json``: the chapter's parameters as a JSON object)::

    torchrun --standalone --nproc_per_node 4 -m dfnb.launch chapters/31_dadf.ipynb out.ipynb params.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def execute_ranks(notebook: Path, executed: Path, params: dict[str, Any], nproc: int, *, kernel: str = "python3",
                  cwd: Path | None = None, progress: bool = True) -> None:
    """Run ``notebook`` in ``nproc`` processes under torchrun; rank 0 writes ``executed``.

    Raises papermill's ``PapermillExecutionError`` of the first rank whose chapter stopped in a cell
    (rank 0's when it is one of them), or ``RuntimeError`` when torchrun failed otherwise.
    """
    import papermill as pm

    from dfnb.runner import _jsonable

    with tempfile.TemporaryDirectory(prefix="dfnb-launch-") as tmp:
        pfile, efile = Path(tmp) / "params.json", Path(tmp) / "error"
        pfile.write_text(json.dumps(_jsonable(params)))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "dfnb.launch", str(notebook), str(executed), str(pfile), "--kernel", kernel,
               "--error", str(efile)] + (["--cwd", str(cwd)] if cwd else []) + (["--progress"] if progress else [])
        rc = subprocess.run(cmd).returncode
        if rc == 0:
            return
        errors = sorted(Path(tmp).glob("error.rank*.json"), key=lambda p: int(p.stem.rsplit("rank", 1)[1]))
        if errors:
            e = json.loads(errors[0].read_text())
            raise pm.PapermillExecutionError(e["cell_index"], e["exec_count"], e["source"], e["ename"], e["evalue"],
                                             e["traceback"])
    raise RuntimeError(f"torchrun with {nproc} processes exited with code {rc} before any chapter cell failed "
                       "(its output above says why)")


def main(argv: list[str] | None = None) -> int:
    """One torchrun process: execute the chapter with papermill; only rank 0 writes the output notebook."""
    import papermill as pm

    ap = argparse.ArgumentParser(prog="python -m dfnb.launch", description=__doc__.splitlines()[0])
    ap.add_argument("notebook")
    ap.add_argument("output", help="the executed notebook (rank 0)")
    ap.add_argument("params", help="a JSON file: the chapter's parameters")
    ap.add_argument("--kernel", default="python3")
    ap.add_argument("--cwd", default=None, help="the kernel's working directory (default: this one)")
    ap.add_argument("--error", default=None, help="write a chapter's error to ERROR.rank<R>.json")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    if "RANK" not in os.environ:
        ap.error("run me under torchrun (torchrun --standalone --nproc_per_node N -m dfnb.launch ...)")
    rank = int(os.environ["RANK"])
    params = json.loads(Path(args.params).read_text())
    scratch = None if rank == 0 else Path(tempfile.mkdtemp(prefix=f"dfnb-rank{rank}-"))
    if scratch is not None:
        os.environ["DFNB_RANK_SCRATCH"] = str(scratch)  # dfnb.runner.start records there
    output = args.output if scratch is None else str(scratch / Path(args.output).name)
    try:
        pm.execute_notebook(args.notebook, output, parameters=params, kernel_name=args.kernel, cwd=args.cwd,
                            progress_bar=args.progress and rank == 0, log_output=False)
    except pm.PapermillExecutionError as e:
        if args.error:
            Path(f"{args.error}.rank{rank}.json").write_text(json.dumps(
                {"cell_index": e.cell_index, "exec_count": e.exec_count, "source": e.source, "ename": e.ename,
                 "evalue": e.evalue, "traceback": e.traceback}))
        print(f"dfnb.launch: rank {rank}: the chapter stopped in cell [{e.exec_count}]: {e.ename}: {e.evalue}",
              file=sys.stderr)
        return 1
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
