"""Plan a stylize run: map input files and folders to output paths and prove every target safe before any work.

No target may be an input (by path or by link) unless overwriting a named file is allowed, two inputs may not share
one, formats that cannot be written fall back to PNG, and every output folder is created and proved writable.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fastnst.runtime.video import (
    VIDEO_EXTENSIONS,
    check_video_output,
    is_video,
)
from fastnst.utils.errors import FastNSTError, ImageError
from fastnst.utils.images import (
    IMAGE_EXTENSIONS,
    SAVE_FORMATS,
    can_write_extension,
    check_output_path,
    list_images,
)


@dataclass(frozen=True)
class Job:
    """One input file and where its result goes."""

    source: Path
    target: Path
    as_png: bool = False
    """The input's format cannot be written (GIF, PPM/PGM), so its result is a PNG instead."""


def plan_jobs(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str],
              out_format: str | None = None, *, overwrite: bool = False) -> list[Job]:
    """Map inputs (files and folders) to output paths, checking everything before any work is done.

    One input file and an output with an image extension → that file (``out_format``, when given, must agree with
    it). Otherwise the output is a folder and each result keeps its name (and its sub-folder, for folder inputs)
    with the input's or ``out_format``'s extension; an input whose format cannot be written becomes a PNG.
    No target may be an input, by path or by a hard or symbolic link: ``overwrite`` lets a file named in
    ``inputs`` be replaced by its own result, but the images of a folder input are never overwritten. Last, every
    output folder is created and probed with a temporary file, so one that cannot be written fails before any
    image is stylized.
    """
    if not inputs:
        raise FastNSTError("no input images given")
    output_arg = output
    output = Path(output)
    sources: list[tuple[Path, Path]] = []  # (file, path relative to the output folder)
    named: set[Path] = set()  # files given in inputs themselves, which overwrite may replace
    for item in map(Path, inputs):
        if item.is_dir():
            found = list_images(item, recursive=True)
            if not found:
                raise ImageError(f"{item} holds no images")
            sources += [(path, path.relative_to(item)) for path in found]
        elif item.is_file():
            sources.append((item, Path(item.name)))
            named.add(item)
        elif not item.exists():
            raise ImageError(f"{item} does not exist")
        else:
            raise ImageError(f"{item} is neither a file nor a folder")

    suffix = f".{out_format.lower().lstrip('.')}" if out_format else None
    # One input file and an output that looks like a file name (has an extension, is no folder, no trailing
    # slash) → that file; an unknown extension is then an error rather than a surprise folder.
    trailing_slash = str(output_arg).endswith(("/", os.sep))
    names_folder = output.is_dir() or trailing_slash or not output.suffix
    if len(sources) == 1 and not Path(inputs[0]).is_dir() and not names_folder:
        jobs = [Job(sources[0][0], output)]
        _check_format_agrees(jobs[0], suffix)
    else:
        _check_output_folder(output, trailing_slash, inputs)
        jobs = [_folder_job(src, output / rel, suffix) for src, rel in sources]
    for job in jobs:
        _check_target(job.source, job.target)
    _check_inputs_survive(jobs, named, overwrite)
    _check_clashes(jobs)
    for folder in dict.fromkeys(job.target.parent for job in jobs):
        _prepare_folder(folder)
    return jobs


_FILE_SUFFIXES = IMAGE_EXTENSIONS | SAVE_FORMATS.keys() | VIDEO_EXTENSIONS


def _check_output_folder(output: Path, trailing_slash: bool, inputs: Sequence[str | os.PathLike[str]]) -> None:
    """A folder output must not be a file, nor look like one: ``-o e4.png`` would otherwise become a folder."""
    if output.exists() and not output.is_dir():
        raise ImageError(f"cannot write into {output}: it is a file, and these inputs need an output folder")
    if not output.exists() and not trailing_slash and output.suffix.lower() in _FILE_SUFFIXES:
        folders = [item for item in inputs if Path(item).is_dir()]
        what = f"the folder input {folders[0]}" if folders else f"{len(inputs)} input files"
        raise FastNSTError(f"{what} needs an output folder, but {output} names a {output.suffix} file; give a "
                           f"folder name (a trailing / makes {output.name} one)")


def _check_format_agrees(job: Job, suffix: str | None) -> None:
    """An output file's extension chooses its format, so a format asked for besides must be the same one."""
    if suffix is None or is_video(job.source):  # videos keep their container; the format names an image format
        return
    has = SAVE_FORMATS.get(job.target.suffix.lower())
    if has is not None and has != SAVE_FORMATS.get(suffix):
        raise FastNSTError(f"the output {job.target} is a {job.target.suffix} file, but the format "
                           f"{suffix.lstrip('.')} was asked for; give the output a {suffix} extension or leave "
                           "the format out")


def _folder_job(source: Path, target: Path, suffix: str | None) -> Job:
    """The job for one file of a folder output; an image whose format cannot be written becomes a PNG."""
    if is_video(source):  # videos keep their container: out_format names an image format
        return Job(source, target)
    if suffix is not None:
        return Job(source, target.with_suffix(suffix))
    if can_write_extension(target.suffix):
        return Job(source, target)
    return Job(source, target.with_suffix(".png"), as_png=True)


def _check_target(source: Path, target: Path) -> None:
    """Images go to image files and videos to video files; either is checked before any work is done."""
    if is_video(source) and not is_video(target):
        raise FastNSTError(f"{source} is a video, so {target} needs a video extension "
                           f"({', '.join(sorted(VIDEO_EXTENSIONS))})")
    if is_video(target) and not is_video(source):
        raise FastNSTError(f"{source} is an image, so {target} needs an image extension, not {target.suffix}")
    if is_video(target):
        check_video_output(target)
    else:
        check_output_path(target)


def _check_clashes(jobs: Sequence[Job]) -> None:
    """Two inputs must not write one output file; the message names them and the file."""
    by_target: dict[str, list[Job]] = {}
    for job in jobs:
        by_target.setdefault(os.path.normcase(os.path.abspath(job.target)), []).append(job)
    clashes = [group for group in by_target.values() if len(group) > 1]
    if not clashes:
        return
    group = clashes[0]
    names = [str(job.source) for job in group]
    listed = f"{', '.join(names[:-1])} and {names[-1]}"
    more = f" (and {len(clashes) - 1} more output file(s) like it)" if len(clashes) > 1 else ""
    raise FastNSTError(f"{listed} would {'both' if len(group) == 2 else 'all'} write {group[0].target}{more}; "
                       "rename them or stylize them into separate folders")


def _identities(path: Path) -> set[tuple[object, ...]]:
    """What makes two paths one file: the resolved path, and (device, inode) when it exists."""
    keys: set[tuple[object, ...]] = set()
    try:
        keys.add(("path", os.path.normcase(str(path.resolve()))))
        info = path.stat()
        keys.add(("inode", info.st_dev, info.st_ino))
    except (OSError, RuntimeError):  # missing, a dangling link, a link loop: nothing more to compare
        pass
    return keys


def _check_inputs_survive(jobs: Sequence[Job], named: set[Path], overwrite: bool) -> None:
    """Refuse, before any work, every target that is an input: the same path, or a hard or symbolic link of it."""
    owners: dict[tuple[object, ...], Path] = {}
    for job in jobs:
        for key in _identities(job.source):
            owners.setdefault(key, job.source)
    victims: list[tuple[Job, Path, bool]] = []  # (job, the input its target is, whether that input is its own)
    for job in jobs:
        target_keys = _identities(job.target)
        hit = next((owners[key] for key in sorted(target_keys, key=str) if key in owners), None)
        if hit is None:
            continue
        own = bool(target_keys & _identities(job.source))
        if not (overwrite and own and job.source in named):
            victims.append((job, hit, own))
    if not victims:
        return
    job, hit, own = victims[0]
    if job.target.is_symlink():
        what = f"the output {job.target} is a symbolic link to the input {hit}"
    elif os.path.abspath(job.target) == os.path.abspath(hit):
        what = f"the output {job.target} is an input file itself"
    elif job.target.resolve() == hit.resolve():
        what = f"the output {job.target} is the input {hit} (through a symbolic link)"
    else:
        what = f"the output {job.target} is a hard link of the input {hit}"
    more = f" (and {len(victims) - 1} more input(s))" if len(victims) > 1 else ""
    if all(own and job.source in named for job, _, own in victims):  # only named files, each its own result
        raise FastNSTError(f"{what}{more}; stylizing would replace the original", setting="overwrite",
                           action="allow")
    raise FastNSTError(f"{what}{more}; the images of a folder input or of another input are never overwritten: "
                       "stylize into a folder that holds no inputs")


def _prepare_folder(folder: Path) -> None:
    """Create an output folder and prove it takes files (a temporary probe file, removed at once)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ImageError(f"cannot create the output folder {folder}: a file of that name is in the way") from None
    except OSError as exc:
        raise ImageError(f"cannot create the output folder {folder}: {_strerror(exc)}") from None
    try:
        handle, probe = tempfile.mkstemp(prefix=".fastnst-probe-", dir=folder)
    except OSError as exc:
        raise ImageError(f"cannot write into the output folder {folder}: {_strerror(exc)}") from None
    os.close(handle)
    os.unlink(probe)


def _strerror(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


