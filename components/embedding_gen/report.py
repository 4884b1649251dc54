"""The coverage report: one self-contained HTML page a person looks at rather than reads.

Coverage by frequency rank (the share of the top-N tokens that have a vector, and of their
occurrences in the corpus), the most frequent tokens without a vector, and the tokens that took a
case-folded row or had duplicate rows in the file. The plot is an SVG drawn here and inlined in
the page, so the page renders anywhere: opened from the artifact, or as the step's visualization
in Kubeflow (EmbeddingGen's `report` output). Drawing it takes milliseconds; importing a
plotting library would cost EmbeddingGen a second.
"""

import html

import numpy as np

REPORT_FILE = "report.html"
MISSING_SHOWN = 30


def coverage_curve(counts, has_vector):
    """Per rank N (1-based, tokens by count descending): the share of the top N tokens that have
    a vector, and the share of the top N tokens' occurrences. counts may be None (then tokens
    are taken in file order, and only the first curve exists)."""
    has_vector = np.asarray(has_vector, bool)
    order = (np.argsort(-np.asarray(counts), kind="stable") if counts is not None
             else np.arange(len(has_vector)))
    covered = np.cumsum(has_vector[order]) / np.arange(1, len(order) + 1)
    if counts is None:
        return covered, None
    weights = np.asarray(counts, np.float64)[order]
    occurrences = np.cumsum(weights * has_vector[order]) / np.maximum(np.cumsum(weights), 1)
    return covered, occurrences


_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP, _RIGHT = 700, 360, 60, 50, 15, 20
_CURVES = (("tokens with a vector", "#1f77b4"), ("corpus occurrences with a vector", "#ff7f0e"))


def _plot(covered, occurrences):
    """An SVG line chart of the curves (in %) over rank N on a log axis."""
    n = len(covered)
    top = max(1.0, np.log10(n))
    width, height = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def x(rank):
        return _LEFT + width * np.log10(rank) / top

    def y(percent):
        return _TOP + height * (1 - percent / 101)

    ranks = np.unique(np.round(np.logspace(0, np.log10(n), 400)).astype(int))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
             f'role="img" aria-label="coverage by frequency rank" font-size="12" '
             f'font-family="sans-serif">']
    for percent in range(0, 101, 20):
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + width}" y1="{y(percent):.1f}" '
                     f'y2="{y(percent):.1f}" stroke="#ddd"/><text x="{_LEFT - 8}" '
                     f'y="{y(percent) + 4:.1f}" text-anchor="end">{percent}</text>')
    for power in range(0, int(top) + 1):
        parts.append(f'<line x1="{x(10 ** power):.1f}" x2="{x(10 ** power):.1f}" y1="{_TOP}" '
                     f'y2="{_TOP + height}" stroke="#ddd"/><text x="{x(10 ** power):.1f}" '
                     f'y="{_TOP + height + 16}" text-anchor="middle">{10 ** power:,}</text>')
    for (label, color), curve in zip(_CURVES, (covered, occurrences)):
        if curve is None:
            continue
        points = " ".join(f"{x(r):.1f},{y(100 * curve[r - 1]):.1f}" for r in ranks)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{points}"><title>{label}</title></polyline>')
    legend_y = _TOP + height - 10
    for i, (label, color) in enumerate(_CURVES[:1 if occurrences is None else 2]):
        parts.append(f'<line x1="{_LEFT + 10}" x2="{_LEFT + 30}" y1="{legend_y - 18 * i}" '
                     f'y2="{legend_y - 18 * i}" stroke="{color}" stroke-width="2"/>'
                     f'<text x="{_LEFT + 36}" y="{legend_y - 18 * i + 4}">{label}</text>')
    parts.append(f'<text x="{_LEFT + width / 2}" y="{_HEIGHT - 8}" text-anchor="middle">top N '
                 f'tokens by frequency</text><text transform="rotate(-90)" '
                 f'x="{-(_TOP + height / 2)}" y="16" text-anchor="middle">% with a pretrained '
                 f'vector</text></svg>')
    return "".join(parts)


def render(tokens, counts, has_vector, *, source, coverage, counts_summary, case_folded,
           duplicates):
    """The report's HTML.

    Args:
      tokens: the vocabulary (bytes), in file order; counts: their counts, or None.
      has_vector: a bool per token.
      source, coverage, counts_summary: the manifest's Source, Coverage and Counts.
      case_folded, duplicates: a few tokens (str) that took a case-folded row, or whose row was
        one of several in the file.
    """
    covered, occurrences = coverage_curve(counts, has_vector)
    missing = [i for i in (np.argsort(-np.asarray(counts), kind="stable") if counts is not None
                           else range(len(tokens))) if not has_vector[i]][:MISSING_SHOWN]
    checkpoints = [n for n in (10, 100, 1000, 10_000, 100_000, 1_000_000) if n <= len(tokens)]
    checkpoints.append(len(tokens))
    rows = "".join(
        f"<tr><td>{n:,}</td><td>{100 * covered[n - 1]:.1f}%</td>"
        + (f"<td>{100 * occurrences[n - 1]:.1f}%</td>" if occurrences is not None else "")
        + "</tr>" for n in sorted(set(checkpoints)))
    missing_rows = "".join(
        f"<tr><td>{_text(tokens[i])}</td><td>{counts[i] if counts is not None else ''}</td></tr>"
        for i in missing)
    corpus = (f", {100 * coverage.corpus_token_share:.1f}% of the corpus's token occurrences"
              if coverage.corpus_token_share is not None else "")
    if coverage.tokens_with_subword_vector:
        corpus += (f"; {coverage.tokens_with_subword_vector:,} more took the vector the fastText "
                   f"model computes from their character n-grams")
    count_items = "".join(f"<li>{html.escape(name)}: {value:,}</li>"
                          for name, value in vars(counts_summary).items())
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Embedding coverage</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}
</style></head><body>
<h1>Embedding coverage</h1>
<p>{coverage.tokens_with_vector:,} of {len(tokens):,} vocabulary tokens have a pretrained vector
({100 * coverage.vocabulary_share:.1f}%){corpus}. Vectors: {html.escape(source.path)}
({html.escape(source.format)}, {source.dimension} dimensions).</p>
<h2>Coverage by frequency rank</h2>
{_plot(covered, occurrences)}
<table><tr><th>top N tokens</th><th>with a vector</th>
{"<th>corpus occurrences with a vector</th>" if occurrences is not None else ""}</tr>{rows}
</table>
<h2>Most frequent tokens without a vector</h2>
<table><tr><th>token</th><th>count</th></tr>{missing_rows}</table>
<h2>Case-folded matches and duplicates</h2>
<p>Tokens that took the vector of a row whose token case-folds like theirs
({counts_summary.case_folded_matches:,}): {_list(case_folded)}</p>
<p>Tokens with several rows in the file, the first one taken
({counts_summary.duplicate_tokens:,} rows ignored): {_list(duplicates)}</p>
<h2>Counts</h2><ul>{count_items}</ul>
</body></html>
"""


def _text(token):
    return html.escape(token.decode("utf-8", "replace") if isinstance(token, bytes) else token)


def _list(tokens):
    return ", ".join(_text(t) for t in tokens) if tokens else "none"
