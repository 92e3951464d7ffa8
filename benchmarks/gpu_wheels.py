"""Will the carried wheels install and import on the lent GPU machine? Checked here, before a GPU is spent.

The machine has no registry: what its image (benchmarks/gpu-image-packages.txt) lacks travels as wheels
in ``.whl/`` (``make gpu-wheels``) and installs with ``pip install --no-index --no-deps --target DIR``,
so pip checks nothing there. This module checks what pip would have: every ``Requires-Dist`` of every
carried distribution, evaluated for the machine (CPython 3.12, Linux x86-64, the extras samcache uses),
is met by another carried one or by the image; versions are compared where known; one version of each;
wheel tags that install on cp312 manylinux x86-64.

    python -m benchmarks.gpu_wheels              # the wheels in .whl/ (exit 1 on a problem)
    python -m benchmarks.gpu_wheels --installed  # on the GPU machine: the versions importable there
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from dataclasses import dataclass, field
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

HERE = Path(__file__).parent
PIN_FILES = (HERE / "gpu-requirements.txt", HERE / "gpu-build-from-source.txt")
IMAGE_FILE = HERE / "gpu-image-packages.txt"
# Declared pins known not to hold, and why they are not needed (the project installs sam3 with --no-deps).
WAIVED = {("sam3", "numpy"), ("sam3", "typing-extensions")}
STDLIB = {"typing"}  # backports on PyPI that Python 3.12's standard library provides (cityscapesScripts asks typing)
# The GPU machine's interpreter (KINDS.md: Python 3.12.3, x86-64 Linux).
TARGET_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython"}


@dataclass
class Dist:
    """One carried distribution: its version, its Requires-Dist lines, the extras samcache asks of it."""

    name: str
    version: str
    requires: list[str]
    extras: set[str] = field(default_factory=set)


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)  # would fail to install or import
    assumed: list[str] = field(default_factory=list)  # met by an image package whose version is unknown here


def read_lines(path: Path) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def read_pins(paths=PIN_FILES) -> dict[str, Requirement]:
    """Canonical name -> the pinned requirement (``name[extras]==version``), from the pin files."""
    pins = {}
    for path in paths:
        for line in read_lines(Path(path)):
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = req
    return pins


def read_image(path: Path = IMAGE_FILE) -> dict[str, str | None]:
    """Canonical name -> version (None where the image's version was not recorded)."""
    image = {}
    for line in read_lines(path):
        name, _, version = line.partition("==")
        image[canonicalize_name(name)] = version or None
    return image


def wheel_dist(path: Path) -> Dist:
    """Name, version and Requires-Dist from a wheel's METADATA (nothing is installed)."""
    with zipfile.ZipFile(path) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        meta = Parser().parsestr(archive.read(meta_name).decode("utf-8"))
    return Dist(meta["Name"], meta["Version"], meta.get_all("Requires-Dist") or [])


def installed_dist(name: str) -> Dist | None:
    """The same from an installed distribution's metadata (this interpreter's path), or None."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    return Dist(dist.metadata["Name"], dist.version, dist.requires or [])


def tag_problem(path: Path) -> str | None:
    """Why a wheel would not install on CPython 3.12, manylinux x86-64 (None when it would)."""
    _, _, _, tags = parse_wheel_filename(path.name)
    for tag in tags:
        stable_abi = tag.abi == "abi3" and tag.interpreter.startswith("cp3") and int(tag.interpreter[3:]) <= 12
        python_ok = tag.interpreter in ("py3", "py312", "cp312") or stable_abi
        linux = tag.platform.startswith("manylinux") and tag.platform.endswith("x86_64")
        platform_ok = tag.platform == "any" or linux
        if python_ok and platform_ok and tag.abi in ("none", "abi3", "cp312"):
            return None
    return f"{path.name}: no tag installs on CPython 3.12, manylinux x86-64"


def check(carried: dict[str, Dist], image: dict[str, str | None], env: dict = TARGET_ENV) -> Report:
    """Every requirement of every carried distribution met by the carried set plus the image."""
    report = Report()
    for _ in range(len(carried)):  # extras asked of carried distributions (dask[array]) bring their needs
        asked = [(canonicalize_name(r.name), set(r.extras)) for _, r in _wanted(carried, env)]
        if all(extras <= carried[dep].extras for dep, extras in asked if dep in carried):
            break
        for dep, extras in asked:
            if dep in carried:
                carried[dep].extras |= extras
    for dist, req in _wanted(carried, env):
        dep = canonicalize_name(req.name)
        if (canonicalize_name(dist.name), dep) in WAIVED:
            continue
        where = f"{dist.name} {dist.version} needs {str(req).split(';')[0].strip()}"
        if dep in carried:
            version = carried[dep].version
            if req.specifier and not req.specifier.contains(Version(version), prereleases=True):
                report.problems.append(f"{where}: {version} is carried")
        elif dep in STDLIB:
            continue
        elif dep in image:
            version = image[dep]
            if version is None:
                if req.specifier:
                    report.assumed.append(f"{where}: the image has it, version unknown")
            elif req.specifier and not req.specifier.contains(Version(version), prereleases=True):
                report.problems.append(f"{where}: the image has {version}; carry a wheel of a version that fits")
        else:
            report.problems.append(f"{where}: neither carried nor in the image")
    return report


def _wanted(carried: dict[str, Dist], env: dict):
    """(dist, requirement) for every Requires-Dist that applies on ``env`` with the dist's extras."""
    for _, dist in sorted(carried.items()):
        for line in dist.requires:
            req = Requirement(line)
            if any(_marker_holds(req.marker, env, extra) for extra in [""] + sorted(dist.extras)):
                yield dist, req


def _marker_holds(marker: Marker | None, env: dict, extra: str) -> bool:
    return marker is None or marker.evaluate({**env, "extra": extra})


def carried_from_wheels(folder: Path, pins: dict[str, Requirement]) -> tuple[dict[str, Dist], list[str]]:
    """The wheels in ``folder``: one Dist each, and problems (duplicates, tags, pins missing or unmet)."""
    carried, problems, paths = {}, [], {}
    for path in sorted(folder.glob("*.whl")):
        dist = wheel_dist(path)
        key = canonicalize_name(dist.name)
        paths[key] = path
        if key in carried:
            problems.append(f"two versions of {dist.name} ({carried[key].version}, {dist.version}): pip stops on that")
        problem = tag_problem(path)
        if problem:
            problems.append(problem)
        carried[key] = dist
    problems += [f"{path.name} is in {folder} but pinned in no pin file (all of {folder} is installed)"
                 for key, path in paths.items() if key not in pins]
    for key, pin in pins.items():
        if key not in carried:
            problems.append(f"{pin} is pinned but no wheel of it is in {folder}")
        elif not pin.specifier.contains(Version(carried[key].version), prereleases=True):
            problems.append(f"{pin} is pinned but {folder} holds {carried[key].version}")
        else:
            carried[key].extras |= set(pin.extras)
    return carried, problems


def carried_from_installed(pins: dict[str, Requirement]) -> tuple[dict[str, Dist], list[str]]:
    """The pinned distributions as this interpreter has them installed (on the GPU machine: the real set)."""
    carried, problems = {}, []
    for key, pin in pins.items():
        dist = installed_dist(pin.name)
        if dist is None:
            problems.append(f"{pin}: not importable here")
            continue
        if not pin.specifier.contains(Version(dist.version), prereleases=True):
            problems.append(f"{pin}: {dist.version} is the one importable here")
        dist.extras |= set(pin.extras)
        carried[key] = dist
    return carried, problems


def image_from_installed(image: dict[str, str | None]) -> dict[str, str | None]:
    """The image list with the versions this interpreter really has (on the GPU machine)."""
    return {key: (installed_dist(key).version if installed_dist(key) else None) for key in image}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=HERE.parent / ".whl", help="folder of carried wheels")
    parser.add_argument("--installed", action="store_true",
                        help="check what this interpreter imports instead of the wheel files (run on the GPU machine)")
    args = parser.parse_args(argv)
    pins, image = read_pins(), read_image()
    if args.installed:
        carried, problems = carried_from_installed(pins)
        image = image_from_installed(image)
    else:
        if not any(args.wheels.glob("*.whl")):
            print(f"Error: no wheels in {args.wheels}; run 'make gpu-wheels'", file=sys.stderr)
            return 1
        carried, problems = carried_from_wheels(args.wheels, pins)
    report = check(carried, image)
    for line in problems + report.problems:
        print(f"problem: {line}")
    for line in report.assumed:
        print(f"assumed: {line}")
    print(f"{len(carried)} carried distributions, {len(problems) + len(report.problems)} problems, "
          f"{len(report.assumed)} requirements on image packages of unknown version")
    return 1 if problems or report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
