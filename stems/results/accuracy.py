"""Measured accuracy per network configuration, read from a CSV and joined onto the design points.

The CSV has a column `accuracy` and one column per knob it depends on, each named as a sweep key
(`timesteps`, `defaults.weight_bits`, `blocks.0.stateful`, ...); `timesteps` may be given without being
swept (it then matches the model's T). A point takes the accuracy of the row whose knob values equal its
own (numbers compared as numbers); a point no row matches has `accuracy` empty and `accuracy_known`
False. Accuracy is maximised when it is an objective.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from stems.errors import StemsInputError, did_you_mean

ACCURACY = "accuracy"


def _norm(value: object) -> str:
    """A knob value for matching: numbers by value (`4` = `4.0`), anything else as its trimmed text."""
    text = str(value).strip()
    try:
        return repr(float(text))
    except ValueError:
        return text.lower() if text.lower() in ("true", "false") else text


def read_accuracy(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """The table, checked: an `accuracy` column of finite numbers, knob columns, no repeated setting."""
    path = "<accuracy table>" if isinstance(source, pd.DataFrame) else str(source)
    if isinstance(source, pd.DataFrame):
        df = source.astype(str)
    else:
        try:
            df = pd.read_csv(path, dtype=str, skipinitialspace=True)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise StemsInputError(
                f"cannot read the accuracy table: {str(err).splitlines()[0]}", path=path
            ) from None
    df.columns = [str(c).strip() for c in df.columns]
    knobs = [c for c in df.columns if c != ACCURACY]
    if ACCURACY not in df.columns or not knobs:
        raise StemsInputError(
            f"expected a column '{ACCURACY}' and one per knob (e.g. timesteps); columns: {', '.join(df.columns)}",
            path=path,
        )
    values = pd.to_numeric(df[ACCURACY], errors="coerce")
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        raise StemsInputError(
            f"accuracy must be a number, not {df[ACCURACY].iloc[bad[0]]!r}",
            path=path,
            where=f"row {bad[0] + 2}",
        )
    if df[knobs].isna().any().any():
        raise StemsInputError("every knob column needs a value in every row", path=path)
    keys = df[knobs].map(_norm)
    dup = keys.duplicated()
    if dup.any():
        raise StemsInputError(
            "this knob setting is listed twice", path=path, where=f"row {int(dup.idxmax()) + 2}"
        )
    out = keys.assign(**{ACCURACY: values.astype(float)})
    out.attrs["path"] = path
    return out


def join_accuracy(points: pd.DataFrame, table: pd.DataFrame, timesteps: Sequence[int]) -> pd.DataFrame:
    """`points` with `accuracy` and `accuracy_known` filled from `table`; `timesteps` is each point's T."""
    path = table.attrs.get("path", "<accuracy table>")
    knobs = [c for c in table.columns if c != ACCURACY]
    for c in knobs:
        if c not in points.columns and c != "timesteps":
            raise StemsInputError(
                f"column '{c}' is not a sweep key{did_you_mean(c, ['timesteps', *points.columns])}; "
                "name each knob column as its --sweep key (or timesteps)",
                path=path,
            )
    found = dict(zip(map(tuple, table[knobs].itertuples(index=False)), table[ACCURACY], strict=True))
    points = points.copy()
    acc = []
    for i in range(len(points)):
        key = tuple(_norm(timesteps[i] if c not in points else points[c].iloc[i]) for c in knobs)
        acc.append(found.get(key, math.nan))
    points[ACCURACY] = acc
    points["accuracy_known"] = [not math.isnan(a) for a in acc]
    return points
