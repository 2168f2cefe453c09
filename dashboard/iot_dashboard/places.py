"""The places simulate knows by name, to label where routes go."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# The places simulate knows by name (config/places.csv), to label where routes go.
PLACES = Path(__file__).resolve().parents[2] / "config" / "places.csv"


def places() -> pd.DataFrame:
    """Name, lat and lon of every place in simulate's list; empty if it is missing."""
    if not PLACES.exists():
        return pd.DataFrame(columns=["name", "lat", "lon"])
    return pd.read_csv(PLACES, comment="#", usecols=["name", "lat", "lon"])


def nearest_places(points: pd.DataFrame, within_km: float = 20.0) -> pd.DataFrame:
    """For each point (lat, lon), the nearest known place within `within_km`, with
    its position: the towns the routes start from and go to."""
    known = places()
    if known.empty or points.empty:
        return known.iloc[0:0]
    found = []
    for lat, lon in zip(points["lat"], points["lon"], strict=True):
        # Degrees to km: about 111 north-south, 111·cos(lat) east-west.
        km = (((known["lat"] - lat) * 111) ** 2 + ((known["lon"] - lon) * 70) ** 2) ** 0.5
        if km.min() <= within_km:
            found.append(known.loc[km.idxmin()])
    return pd.DataFrame(found).drop_duplicates("name") if found else known.iloc[0:0]
