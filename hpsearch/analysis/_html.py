"""HTML pieces the analysis modules' report sections share (figures saved beside the page)."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: files only

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["save", "img", "table", "escape"]
escape = html.escape


def save(ax, path: Path) -> str:
    """Save the axes' figure as a PNG beside the report; returns its file name."""
    fig = ax.figure
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def img(name: str) -> str:
    return f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}"></figure>'


def table(df: pd.DataFrame, max_rows: int = 50) -> str:
    return df.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                     na_rep="", border=0, classes="data")
