"""``dfnb data ...``: render synthetic benchmarks to a folder, list them, preprocess real data sets.

    dfnb data synth --out DIR --name ffpp-syn --n 100 --seed 0 --size 128 [--quality hq] [--split all]
    dfnb data list
    dfnb data real --name ffpp --root /data/FF++ --out DIR [--frames 8] [--split test]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

CONFIRM_GB = 2.0  # a synth run estimated above this many GB needs --yes
BYTES_PER_PIXEL = 3.2  # PNG image + mask per face pixel, an upper estimate measured on the benchmarks


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("data", help="synthetic benchmarks and real data-set preprocessing")
    sub = p.add_subparsers(dest="data_command", required=True)

    s = sub.add_parser("synth", help="render a synthetic benchmark into --out (one folder per split)")
    s.add_argument("--out", required=True, help="output folder; DIR/<split>/ gets images/, masks/, index.csv, meta.json")
    s.add_argument("--name", default="ffpp-syn", help="benchmark name (see `dfnb data list`)")
    s.add_argument("--n", type=int, default=None,
                   help="real videos (identities) in all, shared 72/14/14 by train/val/test "
                        "(with --split X: videos in that split); default: the benchmark's own sizes")
    s.add_argument("--frames", type=int, default=None, help="frames per video (default: the benchmark's)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=128, help="image side in pixels")
    s.add_argument("--quality", default="hq", help="raw | hq | lq (or c0 | c23 | c40)")
    s.add_argument("--split", default="all", choices=["all", "train", "val", "test"])
    s.add_argument("--methods", default=None, help="comma-separated subset, e.g. real,faceswap")
    s.add_argument("--overwrite", action="store_true", help="replace existing split folders")
    s.add_argument("--workers", type=int, default=None, help="processes (default $DFNB_DATA_WORKERS or 1); same bytes")
    s.add_argument("--yes", action="store_true", help=f"write even above {CONFIRM_GB} GB (the estimate is printed)")
    s.set_defaults(func=_synth)

    ls = sub.add_parser("list", help="list the synthetic benchmarks and what each imitates")
    ls.set_defaults(func=_list)

    r = sub.add_parser("real", help="sample, detect and crop faces of a real data set into --out")
    r.add_argument("--name", required=True, help="ffpp | celebdf | dfdc | dfdcp | dfd | dftimit | dfo | wdf | fmld")
    r.add_argument("--root", required=True, help="the data set's root folder, in its published layout")
    r.add_argument("--out", default=None, help="cache folder (default: results/_cache/real)")
    r.add_argument("--split", default="test")
    r.add_argument("--frames", type=int, default=8, help="frames per video, evenly spaced")
    r.add_argument("--size", type=int, default=256)
    r.add_argument("--quality", default="c23")
    r.add_argument("--detector", default="auto", help="auto | mediapipe | cascade")
    r.set_defaults(func=_real)
    return p


def _split_sizes(n: int | None, split: str) -> dict:
    from dfnb.data.benchmark import SPLIT_FRACTIONS, SPLITS

    splits = list(SPLITS) if split == "all" else [split]
    if n is None:
        return {s: None for s in splits}
    if n < 1:
        from dfnb.runner import ParameterError

        raise ParameterError(f"--n must be >= 1, got {n}")
    if split != "all":
        return {split: n}
    sizes = {s: max(1, round(n * SPLIT_FRACTIONS[s])) for s in ("val", "test")}
    sizes["train"] = max(1, n - sizes["val"] - sizes["test"])
    return {s: sizes[s] for s in SPLITS}


def check_synth(args) -> dict:
    """Every ``dfnb data synth`` argument checked before any work: one ``ParameterError`` line naming
    the bad one.  Returns the split sizes; prints the disk estimate, and asks for ``--yes`` above
    :data:`CONFIRM_GB`."""
    import sys

    from dfnb.data.benchmark import FAMILIES, get_spec
    from dfnb.data.quality import ALIASES, LEVELS
    from dfnb.runner import ParameterError

    try:
        spec = get_spec(args.name)
    except KeyError as e:
        raise ParameterError(f"--name: {e.args[0]}") from None
    if args.quality not in LEVELS and args.quality not in ALIASES:
        raise ParameterError(f"--quality {args.quality!r}: use one of {sorted(LEVELS)} or {sorted(ALIASES)}")
    methods = args.methods.split(",") if args.methods else list(spec.methods)
    bad = [m for m in methods if m != "real" and m not in FAMILIES]
    if bad or not methods:
        raise ParameterError(f"--methods: unknown {bad or methods}; known: real, {', '.join(sorted(FAMILIES))}")
    for flag, v, low in (("--size", args.size, 8), ("--frames", args.frames, 1), ("--n", args.n, 1),
                         ("--workers", args.workers, 1)):
        if v is not None and v < low:
            raise ParameterError(f"{flag} must be >= {low}, got {v}")
    sizes = _split_sizes(args.n, args.split)
    videos = sum(spec.n_videos[s] if n is None else n for s, n in sizes.items())
    frames = args.frames or spec.frames_per_video
    fakes = sum(m != "real" for m in methods) * spec.fakes_per_video
    faces = videos * frames * (("real" in methods) + fakes)
    gb = faces * args.size ** 2 * BYTES_PER_PIXEL / 1e9
    print(f"dfnb data synth: about {faces} faces, {gb:.2f} GB", file=sys.stderr)
    if gb > CONFIRM_GB and not args.yes:
        raise ParameterError(f"about {gb:.1f} GB would be written (> {CONFIRM_GB} GB); pass --yes to go on")
    return sizes


def _synth(args) -> int:
    from dfnb.data.benchmark import write_split

    sizes = check_synth(args)
    methods = args.methods.split(",") if args.methods else None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder")
    # every split folder is checked before any is written: nothing is half-done, and --overwrite
    # replaces only folders that dfnb wrote (they hold its meta.json), never a user's own
    there = [out / s for s in sizes if (out / s).exists()]
    foreign = [d for d in there if not (d / "meta.json").is_file()]
    if foreign:
        raise FileExistsError(f"{', '.join(map(str, foreign))} exist(s) and were not written by "
                         "dfnb (no meta.json); refusing to replace them, even with --overwrite")
    if there and not args.overwrite:
        raise FileExistsError(f"{', '.join(map(str, there))} exist(s); pass --overwrite to replace "
                         "them, or choose another --out")
    total = {}
    for split, n in sizes.items():
        meta = write_split(out / split, args.name, split, size=args.size, n_videos=n, frames_per_video=args.frames,
                           quality=args.quality, seed=args.seed, methods=methods, progress=True,
                           overwrite=args.overwrite, workers=args.workers)
        total[split] = {"faces": meta["n_faces"], "faces_per_s": meta["faces_per_s"], "MB": round(meta["bytes"] / 2**20, 2),
                        "counts": meta["counts"]}
    print(json.dumps({"out": str(out), "name": args.name, "splits": total}, indent=1))
    return 0


def _list(args) -> int:
    from dfnb.data.benchmark import BENCHMARKS

    for name, spec in BENCHMARKS.items():
        print(f"{name:13s} {spec.imitates}  [style={spec.style.name}; methods={','.join(spec.methods)}]")
    return 0


def _real(args) -> int:
    from dfnb.data.real import load_real

    try:
        ds = load_real(args.name, args.root, split=args.split, frames_per_video=args.frames, size=args.size,
                       quality=args.quality, detector=args.detector, cache=args.out)
    except RuntimeError as e:  # e.g. every video skipped: the reasons are in the message
        raise ValueError(str(e)) from None
    print(json.dumps({"root": str(ds.root), "detector": ds.meta["params"]["detector"], "summary": ds.summary(),
                      "doubtful": len(ds.meta.get("doubtful", [])), "skipped": ds.skipped[:20]}, indent=1))
    return 0
