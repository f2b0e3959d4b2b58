"""Pure figure builders: plain tensors / lists in, plotly Figures out (no Streamlit)."""
from plotly.colors import qualitative

# Many series on one chart (the latency family has 11): 24 colours that stay apart, where
# evenly stepped hues gave two greens and two magentas.
SERIES_COLOURS = qualitative.Dark24

# Every log axis: whole numbers at every tick. Plotly's default writes the ticks between
# decades as bare digits ("5, 2, 1000, 5, 2, 100", where the 5 under 1000 means 500) and
# the rest with SI suffixes ("200μ").
LOG_AXIS = dict(type="log", minorloglabels="complete", exponentformat="none", separatethousands=True)


def wrap(title: str, width: int = 48) -> str:
    """Plotly never wraps a title, it clips it: break it at spaces into lines of at most
    `width` characters (a longer word keeps its own line)."""
    lines = []
    for word in title.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)


def signed(x: float, digits: int = 3) -> str:
    """A change written with its sign, where one that rounds to zero reads 0.000: plotly's
    "+.3f" writes -0.0002 as "-0.000", a loss that went down by nothing."""
    text = f"{x:+.{digits}f}"
    return f"{0:.{digits}f}" if float(text) == 0 else text


def title_margin(title: str) -> int:
    """Top margin (px) that fits a wrapped title's lines."""
    return 30 + 22 * (title.count("<br>") + 1)


def integer_ticks(largest: float, most: int = 10) -> dict:
    """Axis settings for counts (steps, pair indices, positions): ticks on whole numbers only,
    1, 2 or 5 times a power of ten apart, where plotly would put 0.5 between 0 and 1."""
    step = next(m * 10 ** e for e in range(16) for m in (1, 2, 5) if largest / (m * 10 ** e) <= most)
    return dict(tick0=0, dtick=step, tickformat=",d")
