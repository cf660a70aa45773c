"""The chapter runner: parameter validation, the manifest, and the no-overwrite rule."""
import json
import os
import re
import subprocess
import sys

import nbformat
import pytest

from dfnb import runner

PARAMS_CELL = '''profile = "default"  # smoke|default|paper
seed: int = 0  # random seed
lr = 0.001
n_videos = 4
data_root: str | None = None  # path to a real data set
live_viewers = False
results_dir = None'''

BODY = '''import dfnb.runner, pandas as pd, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
run = dfnb.runner.start("01_toy", profile=profile, seed=seed, lr=lr, n_videos=n_videos,
                        data_root=data_root, live_viewers=live_viewers, results_dir=results_dir)
import numpy as np
x = float(np.random.rand())
run.metric("draw", x, dataset="none")
run.metric("lr_times_n", lr * n_videos)
run.table("t", pd.DataFrame({"a": [1, 2]}))
fig, ax = plt.subplots(); ax.plot([0, 1]); run.figure("line", fig)
run.finish()'''


@pytest.fixture()
def book(tmp_path, monkeypatch):
    """A throw-away book root with one chapter, in its own git repository."""
    (tmp_path / "_config.yml").write_text("title: t\n")
    ch = tmp_path / "chapters"
    ch.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Toy"),
        nbformat.v4.new_code_cell(PARAMS_CELL, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(BODY),
    ]
    nbformat.write(nb, ch / "01_toy.ipynb")
    (ch / "profiles.yml").write_text("01_toy:\n  smoke:\n    n_videos: 1\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init", "--allow-empty"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ch"], cwd=tmp_path, check=True)
    monkeypatch.setenv("DFNB_ROOT", str(tmp_path))
    return tmp_path


def test_read_parameters_types_and_help(book):
    specs = runner.read_parameters(book / "chapters" / "01_toy.ipynb")
    assert list(specs) == ["profile", "seed", "lr", "n_videos", "data_root", "live_viewers", "results_dir"]
    assert specs["seed"].types == (int,) and specs["seed"].help == "random seed"
    assert set(specs["data_root"].types) == {str, type(None)}
    assert specs["lr"].types == (float,) and specs["results_dir"].types is None


def test_parameters_cell_may_import_typing_and_papermill_then_lists_optional(tmp_path):
    from papermill.translators import PythonTranslator

    src = "from typing import Optional  # for papermill\nroot: Optional[str] = None  # a folder\nn: int = 2\n"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": ["parameters"]})]
    nbformat.write(nb, tmp_path / "c.ipynb")
    specs = runner.read_parameters(tmp_path / "c.ipynb")
    assert list(specs) == ["root", "n"] and set(specs["root"].types) == {str, type(None)}
    assert [p.name for p in PythonTranslator.inspect(nb.cells[0])] == ["root", "n"]  # `str | None` is dropped
    nb.cells[0].source = "import os\nn: int = 2\n"
    nbformat.write(nb, tmp_path / "c.ipynb")
    with pytest.raises(runner.ParameterError, match="only assignments, line 1"):
        runner.read_parameters(tmp_path / "c.ipynb")


def test_validate_rejects_unknown_and_ill_typed(book):
    specs = runner.read_parameters(book / "chapters" / "01_toy.ipynb")
    with pytest.raises(runner.ParameterError, match=r"unknown parameter 'sede'.*did you mean seed"):
        runner.validate(specs, {"sede": 1})
    with pytest.raises(runner.ParameterError, match=r"'seed' must be int, got str"):
        runner.validate(specs, {"seed": "one"})
    with pytest.raises(runner.ParameterError, match=r"'n_videos' must be int, got bool"):
        runner.validate(specs, {"n_videos": True})
    with pytest.raises(runner.ParameterError, match=r"'data_root' must be NoneType or str, got int"):
        runner.validate(specs, {"data_root": 3})
    ok = runner.validate(specs, {"lr": 1, "data_root": "/x", "results_dir": "/y"})
    assert ok["lr"] == 1.0 and isinstance(ok["lr"], float) and ok["data_root"] == "/x" and ok["seed"] == 0


def test_parse_value():
    assert runner.parse_value("3") == 3 and runner.parse_value("1e-3") == 1e-3
    assert runner.parse_value("true") is True and runner.parse_value("None") is None
    assert runner.parse_value("[1, 2]") == [1, 2] and runner.parse_value("/data/ff++") == "/data/ff++"


def test_profiles_merge_and_unknown_profile(book):
    nb = book / "chapters" / "01_toy.ipynb"
    assert runner.resolve_params(nb, "smoke")["n_videos"] == 1
    assert runner.resolve_params(nb, "smoke", {"n_videos": 7})["n_videos"] == 7
    assert runner.resolve_params(nb, "default")["n_videos"] == 4
    with pytest.raises(runner.ParameterError, match="unknown profile 'quick'"):
        runner.resolve_params(nb, "quick")
    with pytest.raises(runner.ParameterError, match="no chapter named 'zz'"):
        runner.find_chapter("zz")


def test_execute_writes_record_and_never_overwrites_a_different_run(book):
    out = runner.execute("01", "smoke", {"seed": 3}, progress=False)
    assert out == book / "results" / "smoke" / "01_toy"
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"01_toy.ipynb", "params.json", "manifest.json", "metrics.json", "tables/t.csv", "figures/line.png"} <= names
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "finished" and m["seed"] == 3 and m["profile"] == "smoke"
    assert len(m["code"]["sha"]) == 40 and m["code"]["dirty"] is False
    assert m["versions"]["torch"] and m["versions"]["python"]
    assert m["device"]["requested"] == "cpu" and m["peak_rss_mb"] > 10 and m["end"] >= m["start"]
    assert m["runner"]["error"] is None and m["runner"]["wall_seconds"] > 0
    params = json.loads((out / "params.json").read_text())
    assert params["n_videos"] == 1 and params["seed"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics[1] == {"name": "lr_times_n", "value": pytest.approx(0.001), "dataset": None, "split": None,
                          "model": None, "seed": None}  # the record contract: these keys always present
    first_draw = metrics[0]["value"]

    # the same run again replaces it, with the same seeded number
    runner.execute("01", "smoke", {"seed": 3}, progress=False)
    assert json.loads((out / "metrics.json").read_text())[0]["value"] == first_draw
    # a different run is refused, and the old record is intact
    with pytest.raises(runner.RunExistsError, match=r"seed: 3 -> 4"):
        runner.execute("01", "smoke", {"seed": 4}, progress=False)
    assert json.loads((out / "params.json").read_text())["seed"] == 3
    # --force archives the old run first
    runner.execute("01", "smoke", {"seed": 4}, force=True, progress=False)
    archived = list((book / "results" / "_archive" / "smoke" / "01_toy").glob("*/params.json"))
    assert len(archived) == 1 and json.loads(archived[0].read_text())["seed"] == 3


def test_cli_reports_bad_parameter(book):
    env_py = sys.executable
    r = subprocess.run([env_py, "-m", "dfnb.cli", "run", "01_toy", "-p", "seed=x"], capture_output=True, text=True, cwd=book)
    assert r.returncode != 0 and "'seed' must be int" in r.stderr



def test_plain_papermill_unknown_or_ill_typed_parameter_is_an_error(book):
    def papermill(*args):
        return subprocess.run([sys.executable, "-m", "papermill", str(book / "chapters/01_toy.ipynb"),
                               str(book / "out.ipynb"), *args, "-p", "results_dir", str(book / "results/mine")],
                              capture_output=True, text=True, cwd=book)

    for args, msg in ((["-p", "sede", "1"], "unknown parameter 'sede' (did you mean seed?)"),
                      (["-p", "seed", "x"], "parameter 'seed' must be int")):
        r = papermill(*args)
        assert r.returncode != 0 and msg in r.stderr + r.stdout, r.stderr[-2000:]
        assert not (book / "results/mine/params.json").exists()
    ok = papermill("-p", "seed", "2")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads((book / "results/mine/params.json").read_text())["seed"] == 2


def test_set_threads_takes_the_given_number_or_every_core():
    import os

    import torch

    from dfnb.runner import ParameterError, set_threads

    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        assert set_threads(None) == (os.cpu_count() or 1)
        with pytest.raises(ParameterError, match="threads"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_strip_progress_removes_tqdm_outputs_only(tmp_path):
    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2},
              "text/plain": "ffpp-syn/test:  40%|####      | 192/480 [00:01<00:02, 99.0face/s]"}
    viewer = {"application/vnd.jupyter.widget-view+json": {"model_id": "y", "version_major": 2},
              "text/plain": "VBox(children=(IntSlider(value=0), HTML(value='3%|')))"}
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = [nbformat.v4.new_output("display_data", data=widget),
                    nbformat.v4.new_output("stream", name="stderr", text="epoch 1/3:  50%|#  | 2/4 [00:01<00:01]\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="UserWarning: a real warning\n"),
                    nbformat.v4.new_output("display_data", data=viewer),
                    nbformat.v4.new_output("display_data", data={"text/plain": "10%| 1/10"})]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), cell])
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, str(path))
    assert runner.strip_progress(path) == 2
    outs = nbformat.read(str(path), as_version=4).cells[1].outputs
    assert [o.get("text", o.get("data", {}).get("text/plain")) for o in outs] == [
        "UserWarning: a real warning\n", viewer["text/plain"], "10%| 1/10"]
    assert runner.strip_progress(path) == 0


def test_table_writes_csv_and_displays_it_under_its_file_name(tmp_path, monkeypatch):
    import IPython.display
    import pandas as pd

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs: shown.extend(objs))
    run = runner.Run("t", {"profile": "smoke"}, tmp_path, glue=False)
    df = pd.DataFrame({"a": [1, 2]})
    assert run.table("my_table", df) is None
    assert (tmp_path / "tables" / "my_table.csv").read_text() == ",a\n0,1\n1,2\n"
    assert "tables/my_table.csv" in shown[0].data and shown[1] is df
    run.table("quiet", df, show=False)
    assert len(shown) == 2


@pytest.mark.parametrize("how", ["interrupt", "fail"])
def test_an_unfinished_rerun_leaves_the_earlier_run_in_place(book, monkeypatch, capsys, how):
    import papermill as pm

    out = runner.execute("01", "smoke", {"seed": 3}, progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(src, dst, **kw):  # the kernel wrote part of a run, then died
        (out / "manifest.json").write_text(json.dumps({"chapter": "01_toy", "status": "running"}))
        (out / "half.pt").write_bytes(b"x")
        if how == "interrupt":
            raise KeyboardInterrupt
        raise pm.PapermillExecutionError(0, 1, "x", "ValueError", "steps must be >= 1", [])

    monkeypatch.setattr(pm, "execute_notebook", broken)
    with pytest.raises(KeyboardInterrupt if how == "interrupt" else pm.PapermillExecutionError):
        runner.execute("01", "smoke", {"seed": 3}, progress=False)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # every file of the earlier run, byte for byte, nothing of the new one
    status = "interrupted" if how == "interrupt" else "failed"
    failed, = (book / "results" / "_archive" / "smoke" / "01_toy").glob(f"*-{status}")
    assert (failed / "half.pt").exists() and json.loads((failed / "manifest.json").read_text())["status"] == status
    assert f"the earlier run is back in {out}" in capsys.readouterr().err
    assert not list(out.parent.glob(".01_toy.earlier-*"))


def test_force_archives_only_a_run_and_never_nests(book, tmp_path):
    mine = tmp_path / "my_folder"
    mine.mkdir()
    (mine / "labels.csv").write_text("keep me")
    with pytest.raises(runner.RunExistsError, match="not a dfnb run"):
        runner.execute("01", "smoke", {}, out_dir=mine, force=True, progress=False)
    assert (mine / "labels.csv").read_text() == "keep me"
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(runner.RunExistsError, match="is a file"):
        runner.execute("01", "smoke", {}, out_dir=tmp_path / "a_file", progress=False)
    out = runner.execute("01", "smoke", {"seed": 1}, progress=False)
    a = runner.archive(out)
    out2 = runner.execute("01", "smoke", {"seed": 2}, progress=False)
    b = runner.archive(out2)
    assert a != b and a.parent == b.parent and not (a / b.name).exists()
    assert json.loads((b / "params.json").read_text())["seed"] == 2


@pytest.mark.parametrize("override, message", [
    ({"n_videos": 0}, "'n_videos' must be >= 1, got 0"),
    ({"lr": float("nan")}, "'lr' must be a finite number"),
    ({"seed": -1}, "'seed' must be >= 0, got -1"),  # was a traceback from inside the kernel
])
def test_counts_out_of_range_are_one_line_errors(book, override, message):
    with pytest.raises(runner.ParameterError, match=re.escape(message)):
        runner.execute("01", "smoke", override, progress=False)


def test_check_range_and_device():
    runner.check_range("ablation_epochs", 2)
    with pytest.raises(runner.ParameterError, match="'ablation_epochs' must be >= 1"):
        runner.check_range("ablation_epochs", 0)
    with pytest.raises(runner.ParameterError, match="'size' must be >= 8, got 0"):
        runner.check_range("size", 0)
    runner.check_device("cpu")
    with pytest.raises(runner.ParameterError, match="unknown device 'gpu'"):
        runner.check_device("gpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(runner.ParameterError, match="no CUDA GPU"):
            runner.check_device("cuda")


def test_output_folder_is_given_once_and_resolved_where_the_user_is(book, tmp_path, monkeypatch):
    with pytest.raises(runner.ParameterError, match="not as -p results_dir"):
        runner.execute("01", "smoke", {"results_dir": "x"}, progress=False)
    with pytest.raises(runner.ParameterError, match="--out is empty"):
        runner.execute("01", "smoke", {}, out_dir="", progress=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = runner.execute("01", "smoke", {}, out_dir="mine", progress=False)
    assert out == elsewhere / "mine" and (out / "metrics.json").exists() and (out / "01_toy.ipynb").exists()
    assert not (book / "mine").exists()


def test_corrupt_manifest_is_named(book):
    out = runner.execute("01", "smoke", {}, progress=False)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(runner.RunExistsError, match="manifest.json is not valid JSON"):
        runner.execute("01", "smoke", {}, progress=False)


def test_plain_papermill_and_dfnb_run_give_the_same_params(book):
    """profiles.yml sets n_videos: 1 for smoke; plain papermill with -p profile smoke must apply it too."""
    r = subprocess.run([sys.executable, "-m", "papermill", str(book / "chapters/01_toy.ipynb"), str(book / "o.ipynb"),
                        "-p", "profile", "smoke", "-p", "seed", "5", "-p", "results_dir", str(book / "results/pm")],
                       capture_output=True, text=True, cwd=book)
    assert r.returncode == 0, r.stderr[-2000:]
    out = runner.execute("01", "smoke", {"seed": 5}, progress=False)
    pm_params = json.loads((book / "results/pm/params.json").read_text())
    run_params = json.loads((out / "params.json").read_text())
    pm_params.pop("results_dir", None), run_params.pop("results_dir", None)
    assert pm_params == run_params and pm_params["n_videos"] == 1
    metrics = json.loads((book / "results/pm/metrics.json").read_text())
    assert [m["value"] for m in metrics if m["name"] == "lr_times_n"] == [pytest.approx(0.001)]  # the cell saw 1
    with pytest.raises(runner.ParameterError, match="contradicts --profile smoke"):
        runner.execute("01", "smoke", {"profile": "paper"}, progress=False)


def test_plain_papermill_refused_into_the_same_output_keeps_the_earlier_executed_notebook(book):
    """papermill writes its output notebook before any cell runs: the refused second run replaces out.ipynb,
    so the run directory must hold its own copy of the first run's executed notebook."""
    def papermill(seed, out="out.ipynb", *extra):
        return subprocess.run([sys.executable, "-m", "papermill", "chapters/01_toy.ipynb", out, *extra,
                               "-p", "seed", str(seed), "-p", "results_dir", "results/mine"],
                              capture_output=True, text=True, cwd=book)

    first = papermill(2)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = book / "results/mine/01_toy.ipynb"
    assert kept.exists(), "the run directory holds no copy of the executed notebook"
    nb = nbformat.read(str(kept), as_version=4)
    assert "seed = 2" in nb.cells[2].source and nb.cells[-1].execution_count  # injected and executed
    before = kept.read_bytes()
    second = papermill(3)
    assert second.returncode != 0 and "seed: 2 -> 3" in second.stdout + second.stderr
    assert f"the earlier run's executed notebook is {kept}" in second.stdout + second.stderr
    assert kept.read_bytes() == before  # out.ipynb is the refused run now; the earlier one is kept
    inside = papermill(2, "results/mine/again.ipynb")
    assert inside.returncode != 0 and "is inside the run directory" in inside.stdout + inside.stderr
    assert kept.read_bytes() == before
    injected = papermill(2, "out2.ipynb", "--inject-paths")  # papermill's own parameters are not the chapter's
    assert injected.returncode == 0, injected.stderr[-2000:]


def test_a_chapter_that_fails_is_one_line_on_the_command_line(book, monkeypatch, capsys):
    """A wrong data root (or any error in a cell) stops the chapter: `dfnb run` says so in one line each for
    the error and where its traceback is, exit 1, not papermill's two tracebacks."""
    import papermill as pm

    from dfnb.cli import main

    def broken(src, dst, **kw):
        raise pm.PapermillExecutionError(3, 4, "x", "FileNotFoundError", "load_real('celebdf', root='/x'): ...", [])

    monkeypatch.setattr(pm, "execute_notebook", broken)
    assert main(["run", "01", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert "failed (FileNotFoundError: load_real('celebdf', root='/x')" in err and "stopped in cell [4]" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2
    with pytest.raises(pm.PapermillExecutionError):
        main(["--debug", "run", "01", "--profile", "smoke", "--force"])


# ----------------------------------------------------------------------------- on a GPU: precision, workers, torchrun
DDP_PARAMS = '''profile = "default"
seed: int = 0
device = "cpu"
batch_size = 8
stop_on_rank: int = -1  # a rank whose chapter fails (tests)
results_dir = None'''

DDP_BODY = '''import os, torch, dfnb, dfnb.runner
run = dfnb.runner.start("02_ddp", profile=profile, seed=seed, device=device, batch_size=batch_size,
                        stop_on_rank=stop_on_rank, results_dir=results_dir)


class Faces(torch.utils.data.Dataset):
    def __init__(self, n, seed, split):
        g = torch.Generator().manual_seed(seed)
        self.x, self.y, self.split = torch.rand(n, 3, 16, 16, generator=g), torch.arange(n) % 2, split
        self.x[self.y == 1, :, 4:10, 4:10] = 1.0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"image": self.x[i], "label": self.y[i]}


if int(os.environ.get("RANK", "0")) == stop_on_rank:
    raise ValueError(f"rank {stop_on_rank} stops here")
dfnb.engine.seed_everything(0)
model = dfnb.create_model("toy_cnn", width=4)
h = dfnb.engine.fit(model, Faces(32, 1, "train"), Faces(16, 2, "val"), epochs=1, batch_size=batch_size, lr=1e-2,
                    seed=seed, device=device, progress=False)
run.metric("train_loss", h.epochs[0]["train"]["loss"])
run.metric("weight_sum", float(sum(p.sum() for p in model.parameters())))
run.metric("threads", torch.get_num_threads())
run.finish()'''


@pytest.fixture()
def ddp_book(book):
    """The throw-away book with a second chapter that trains toy_cnn with dfnb.engine.fit."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(DDP_PARAMS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(DDP_BODY)]
    nbformat.write(nb, book / "chapters" / "02_ddp.ipynb")
    return book


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


def _metrics(out):
    return {m["name"]: m["value"] for m in json.loads((out / "metrics.json").read_text())}


def test_precision_and_workers_reach_the_kernel_and_the_manifest(book, monkeypatch):
    monkeypatch.delenv("DFNB_PRECISION", raising=False)
    monkeypatch.delenv("DFNB_NUM_WORKERS", raising=False)
    out = runner.execute("01", "smoke", {}, progress=False)
    assert _manifest(out)["compute"] == {"precision": "fp32", "num_workers": 0, "world_size": 1, "gpu": "none"}
    with pytest.raises(runner.RunExistsError, match=r"precision: 'fp32' -> 'bf16'"):  # another precision: another run
        runner.execute("01", "smoke", {}, progress=False, precision="bf16", workers=2)
    out = runner.execute("01", "smoke", {}, out_dir=book / "bf16", progress=False, precision="bf16", workers=2)
    m = _manifest(out)
    assert m["compute"] == {"precision": "bf16", "num_workers": 2, "world_size": 1, "gpu": "none"}
    assert m["runner"]["nproc"] == 1
    assert "DFNB_PRECISION" not in os.environ and "DFNB_NUM_WORKERS" not in os.environ  # restored
    for kw, msg in ((dict(precision="half"), "precision='half' is not a precision"),
                    (dict(workers=-1), "num_workers must be an integer >= 0, got -1"),
                    (dict(nproc=0), "--nproc must be an integer >= 1, got 0")):
        with pytest.raises(runner.ParameterError, match=re.escape(msg)):  # before anything is written
            runner.execute("01", "smoke", {}, out_dir=book / "bad", progress=False, **kw)
    assert not (book / "bad").exists()
    with pytest.raises(runner.ParameterError, match=re.escape("batch_size 8 (global) is not divisible by --nproc 3")):
        runner.check_compute({"batch_size": 8}, None, None, 3)
    monkeypatch.setenv("DFNB_PRECISION", "fp8")
    with pytest.raises(runner.ParameterError, match=re.escape("$DFNB_PRECISION='fp8' is not a precision")):
        runner.execute("01", "smoke", {}, out_dir=book / "fp8", progress=False)


def test_cli_flags_and_plain_papermill_environment(book):
    from dfnb.cli import main

    assert main(["run", "01", "--profile", "smoke", "--precision", "fp16", "--workers", "0", "--out",
                 str(book / "cli")]) == 0
    assert _manifest(book / "cli")["compute"]["precision"] == "fp16"
    env = dict(os.environ, DFNB_PRECISION="bf16", DFNB_NUM_WORKERS="1")
    r = subprocess.run([sys.executable, "-m", "papermill", str(book / "chapters/01_toy.ipynb"), str(book / "o.ipynb"),
                        "-p", "results_dir", str(book / "results/pm")], capture_output=True, text=True, cwd=book,
                       env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _manifest(book / "results/pm")["compute"] == {"precision": "bf16", "num_workers": 1, "world_size": 1,
                                                         "gpu": "none"}


def test_nproc_trains_data_parallel_under_torchrun_and_rank_0_records(ddp_book, monkeypatch):
    """2 CPU processes (gloo): the same training as one process, recorded once, by rank 0."""
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    one = runner.execute("02", "default", {}, out_dir=ddp_book / "one", progress=False)
    two = runner.execute("02", "default", {}, out_dir=ddp_book / "two", progress=False, nproc=2)
    m = _manifest(two)
    assert m["compute"]["world_size"] == 2 and m["runner"]["nproc"] == 2 and m["status"] == "finished"
    assert _manifest(one)["compute"]["world_size"] == 1
    a, b = _metrics(one), _metrics(two)
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
    assert b["weight_sum"] == pytest.approx(a["weight_sum"], rel=1e-5)
    assert b["threads"] == max(1, (os.cpu_count() or 1) // 2)  # the cores shared between the 2 processes
    assert sorted(p.name for p in two.iterdir()) == ["02_ddp.ipynb", "manifest.json", "metrics.json", "params.json"]


def test_nproc_a_ranks_error_is_the_runs_error(ddp_book, monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(Exception, match="rank 1 stops here") as err:
        runner.execute("02", "default", {"stop_on_rank": 1}, out_dir=ddp_book / "stop", progress=False, nproc=2)
    assert type(err.value).__name__ == "PapermillExecutionError"
    assert _manifest(ddp_book / "stop")["status"] == "failed"
