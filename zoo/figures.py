"""Figures for cards, commands and the lab: drawn on matplotlib's Agg canvas (no pyplot, so no global
state and no display) and written as PNG files atomically (a reader never sees half a file)."""

import io


def new_figure(width, height, dpi=100):
    """A matplotlib `Figure` of `width` × `height` inches on the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def write_png(figure, path, **savefig_options):
    """Lay `figure` out tightly and write it to `path` as a PNG, atomically; returns the path.
    `savefig_options` go to `Figure.savefig` (e.g. `dpi`, `metadata`)."""
    from zoo.data.cache import atomic_write_bytes

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **savefig_options)
    return atomic_write_bytes(path, buffer.getvalue())
