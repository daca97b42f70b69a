"""zoo.figures: Agg figures without pyplot, written as PNG files atomically."""

from zoo.figures import new_figure, write_png


def test_a_figure_is_written_as_a_png_atomically(tmp_path):
    figure = new_figure(3.0, 2.0, dpi=50)
    figure.subplots().plot([0, 1, 2], [2, 0, 1])
    path = write_png(figure, tmp_path / "nested" / "plot.png", dpi=40)
    assert path == tmp_path / "nested" / "plot.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (120, 80)  # 3 x 2 inches at the savefig dpi
    assert [p.name for p in path.parent.iterdir()] == ["plot.png"]  # no temporary file left
