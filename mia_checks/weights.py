"""Which weights files mia-checks loads: safetensors, and pickle-based files only when the user opts in.

A privacy gate loads untrusted checkpoints, and unpickling can run arbitrary code. Every loader (targets,
LoRA adapters, embedders, the captioner) checks its files here before anything is read, so the rule and its
wording are the same everywhere.
"""

from __future__ import annotations

from pathlib import Path

from .errors import MiaUsageError

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
ADVICE = ("Loading a pickle can run arbitrary code: convert it to safetensors, or pass --mia-allow-pickle if you "
          "trust it.")


def pickle_refusal(option: str, where: Path, files: list[str] | None = None, what: str = "weights file"
                   ) -> MiaUsageError:
    """The error for pickle-based weights the user has not opted into: a file (a pickle-based `what`), or a
    folder and its files."""
    if files is None:
        return MiaUsageError(f"{option}: {where} is a pickle-based {what}. {ADVICE}")
    return MiaUsageError(f"{option}: {where} holds only pickle-based weights ({', '.join(sorted(files))}). {ADVICE}")


def pickles_in(folder: Path, recursive: bool = False) -> list[Path]:
    return [p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.suffix in PICKLE_SUFFIXES]


def check_weights_file(path: Path, allow_pickle: bool, option: str, what: str = "checkpoint") -> None:
    """A single weights file: .safetensors, or a pickle-based one with --mia-allow-pickle."""
    if path.suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise pickle_refusal(option, path, what=what)
        return
    if path.suffix != ".safetensors":
        raise MiaUsageError(f"{option}: {path} is a single file but not a {what} (.safetensors, or with "
                            "--mia-allow-pickle .ckpt/.pt/.bin).")


def check_weights_folder(folder: Path, allow_pickle: bool, option: str, what: str = "weights") -> None:
    """A folder of one model's weights: some *.safetensors, or pickle-based ones with --mia-allow-pickle."""
    if any(p.suffix == ".safetensors" for p in folder.iterdir()):
        return
    pickles = pickles_in(folder)
    if not pickles:
        raise MiaUsageError(f"{option}: {folder} holds no {what} (*.safetensors).")
    if not allow_pickle:
        raise pickle_refusal(option, folder, [p.name for p in pickles])
