"""Tests of robustkit.plot (Agg backend): axes counts, title colours, data actually drawn."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from robustkit.plot import (CORRECT_COLOR, OKABE_ITO, WRONG_COLOR, heatmap, image_grid,  # noqa: E402
                            plot_curves, plot_history, set_style)
from robustkit.train import History  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _same_color(a, b):
    return mcolors.to_rgba(a) == mcolors.to_rgba(b)


def test_set_style_updates_rcparams():
    with matplotlib.rc_context():
        style = set_style()
        assert matplotlib.rcParams["figure.dpi"] == 110
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert matplotlib.rcParams["axes.spines.right"] is False
        assert matplotlib.rcParams["axes.grid"] is True
        colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        assert [c.lower() for c in colors] == [c.lower() for c in OKABE_ITO]
        assert style["figure.dpi"] == 110


def test_image_grid_axes_and_title_colors():
    images = torch.rand(10, 1, 6, 6)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    preds = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 1, 2])  # last two wrong
    names = [f"c{i}" for i in range(10)]
    fig = image_grid(images, labels, preds, class_names=names, ncols=4, title="grid")
    assert len(fig.axes) == 10  # 3x4 grid, the two spare axes removed
    titles = [ax.title for ax in fig.axes]
    for i, t in enumerate(titles):
        if i < 8:
            assert t.get_text() == names[i] and _same_color(t.get_color(), CORRECT_COLOR)
        else:
            assert t.get_text() == f"{names[preds[i]]} ({names[labels[i]]})"
            assert _same_color(t.get_color(), WRONG_COLOR)
    assert fig._suptitle.get_text() == "grid"
    # the pixels drawn are the input pixels
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), images[3, 0].numpy())


def test_image_grid_shapes_and_single_annotations():
    rgb = np.random.default_rng(0).random((3, 3, 5, 5))
    fig = image_grid(rgb)
    assert len(fig.axes) == 3
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), rgb[1].transpose(1, 2, 0))
    assert all(ax.title.get_text() == "" for ax in fig.axes)
    fig = image_grid(np.zeros((4, 5, 5)), labels=[3, 1, 4, 1])
    assert [ax.title.get_text() for ax in fig.axes] == ["3", "1", "4", "1"]
    assert all(_same_color(ax.title.get_color(), "black") for ax in fig.axes)
    # perturbations: values in [vmin, vmax] are mapped to [0, 1] for RGB
    fig = image_grid(np.full((1, 3, 2, 2), 0.1), vmin=-0.1, vmax=0.1)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), np.ones((2, 2, 3)))


def test_image_grid_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        image_grid(np.zeros((2, 2, 5, 5)))
    with pytest.raises(ValueError, match="empty"):
        image_grid(np.zeros((0, 1, 5, 5)))
    with pytest.raises(ValueError, match="labels has 2 entries for 3"):
        image_grid(np.zeros((3, 5, 5)), labels=[1, 2])
    with pytest.raises(ValueError, match="out of range"):
        image_grid(np.zeros((1, 5, 5)), labels=[5], class_names=["a", "b"])


def test_plot_curves_draws_each_curve_with_error_bars_and_log_scale():
    x = np.array([0.0, 0.1, 0.2])
    ax = plot_curves({"clean": (x, [0.9, 0.5, 0.1]), "robust": [0.8, 0.7, 0.6]},
                     xlabel="eps", ylabel="accuracy", title="t", logy=True,
                     errorbars={"robust": [0.01, 0.02, 0.03]})
    lines = {l.get_label(): l for l in ax.get_lines() if not l.get_label().startswith("_")}
    assert set(lines) == {"clean"}
    np.testing.assert_allclose(lines["clean"].get_xdata(), x)
    assert len(ax.containers) == 1  # the "robust" curve is an errorbar container
    bars = ax.containers[0]
    assert bars.get_label() == "robust"
    np.testing.assert_allclose(bars.lines[0].get_xdata(), [0, 1, 2])  # default x
    np.testing.assert_allclose(bars.lines[0].get_ydata(), [0.8, 0.7, 0.6])
    segments = bars.lines[2][0].get_segments()  # vertical bars y - err .. y + err
    np.testing.assert_allclose([s[:, 1] for s in segments], [[0.79, 0.81], [0.68, 0.72], [0.57, 0.63]])
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "eps" and ax.get_title() == "t"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["clean", "robust"]
    # draws on a given Axes
    fig, ax2 = plt.subplots()
    assert plot_curves({"a": [1, 2]}, ax=ax2) is ax2 and ax2.get_legend() is None


def test_plot_curves_bad_inputs():
    with pytest.raises(ValueError, match="non-empty"):
        plot_curves({})
    with pytest.raises(ValueError, match="equal length"):
        plot_curves({"a": ([1, 2, 3], [1, 2])})
    with pytest.raises(ValueError, match="unknown curves"):
        plot_curves({"a": [1, 2]}, errorbars={"b": [1, 1]})
    with pytest.raises(ValueError, match="length"):
        plot_curves({"a": [1, 2]}, errorbars={"a": [1]})


def test_plot_history_two_axes_train_and_validation():
    h = History(train_loss=[1.0, 0.5, 0.3], train_accuracy=[0.5, 0.8, 0.9],
                val_loss=[1.1, 0.7, 0.6], val_accuracy=[0.4, 0.7, 0.8])
    fig = plot_history(h)
    assert len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert [l.get_label() for l in loss_ax.get_lines()] == ["train", "validation"]
    np.testing.assert_allclose(acc_ax.get_lines()[1].get_ydata(), [0.4, 0.7, 0.8])
    assert loss_ax.get_lines()[1].get_linestyle() == "--"
    # untracked training accuracy (nan) is not drawn; dicts accepted
    fig = plot_history({"train_loss": [1.0], "train_accuracy": [float("nan")]})
    assert len(fig.axes[1].get_lines()) == 0
    with pytest.raises(ValueError, match="empty"):
        plot_history(History())


def test_heatmap_annotations_labels_and_contrast():
    cm = np.array([[50, 2], [5, 43]])
    ax = heatmap(cm, ["cat", "dog"], ["cat", "dog"], xlabel="predicted", ylabel="true",
                 cmap="Greys")
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["50", "2", "5", "43"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]
    # Greys: large values are dark -> white text; small values light -> black text
    colors = [t.get_color() for t in ax.texts]
    assert _same_color(colors[0], "white") and _same_color(colors[1], "black")
    assert len(ax.figure.axes) == 2  # heatmap + colorbar
    np.testing.assert_allclose(ax.images[0].get_array(), cm)
    ax = heatmap(np.full((3, 4), 0.123456), colorbar=False)
    assert ax.texts[0].get_text() == "0.12" and len(ax.figure.axes) == 1
    assert len(heatmap(np.zeros((30, 30)), colorbar=False).texts) == 0  # too big to annotate


def test_heatmap_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        heatmap(np.zeros(3))
    with pytest.raises(ValueError, match="xticklabels has 1 entries for 2 columns"):
        heatmap(np.zeros((2, 2)), xticklabels=["a"])
