"""The report page: static HTML with inline CSS and relative image links; no scripts, no network."""

from __future__ import annotations

import html
from typing import Any

STYLE = """
body { font-family: system-ui, -apple-system, 'DejaVu Sans', sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
figure { margin: 1rem 0; } figcaption { font-size: .9rem; color: #555; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #eee; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .95rem; }
th, td { border: 1px solid #ccc; padding: .35rem .7rem; text-align: left; }
th { background: #f4f4f4; }
pre { background: #f7f7f7; padding: .8rem; overflow-x: auto; font-size: .8rem; }
.numbers td:first-child { font-weight: 600; }
.tsne { display: flex; flex-wrap: wrap; gap: 1rem; } .tsne figure { flex: 1 1 45%; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def number(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return esc(value) if value is not None else "-"


def figure(src: str, caption: str, alt: str) -> str:
    return f'<figure><img src="{esc(src)}" alt="{esc(alt)}"><figcaption>{esc(caption)}</figcaption></figure>'


def key_values(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{esc(k)}</td><td>{number(v)}</td></tr>" for k, v in rows)
    return f'<table class="numbers">{body}</table>'


def settings_table(settings: dict[str, Any]) -> str:
    """A run's settings as a two-column table (lists joined by commas)."""
    def shown(value: Any) -> str:
        return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

    return key_values([(k.replace("_", " "), shown(v)) for k, v in settings.items()])


def markdown_table(markdown: str) -> str:
    """Render the adaptation table's markdown (header, rule, rows) as an HTML table."""
    lines = [line.strip().strip("|").split("|") for line in markdown.strip().splitlines()]
    header, rows = lines[0], lines[2:]
    head = "".join(f"<th>{esc(c.strip())}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c.strip())}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="adaptation-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def digits_section(d: dict[str, Any]) -> list[str]:
    s = d["scores"]
    rows = [("checkpoint", d["checkpoint"]), ("sampler", d["sampler"]), ("guidance", d["guidance"]),
            ("network evaluations per image", d["forwards_per_image"]), ("device / precision", f"{d['device']} / {d['precision']}"),
            ("images scored", s["count"]), ("judge accuracy", s["judge_accuracy"])]
    if s.get("overall") is not None:
        rows.append(("course classifier accuracy", s["overall"]))
    else:
        rows.append(("course classifier accuracy", "- (no course classifier given: digits.classifier in the report config)"))
    rows += [("judge Fréchet distance to real test images", s["frechet"]),
             ("real-vs-real floor at this sample size", s.get("floor_at_n") if s.get("floor_at_n") is not None else "- (recorded for 100, 200, 500, 1,000 images)"),
             ("real-vs-real floor, two halves", s.get("floor_halves"))]
    cas = s.get("accuracy_score")
    if cas:
        rows += [("accuracy score: trained on generated", sum(cas["generated"]) / len(cas["generated"])),
                 ("accuracy score: trained on as many real", sum(cas["real"]) / len(cas["real"])), ("accuracy score ratio", cas["ratio"])]
    else:
        rows.append(("accuracy score", "- (no real images given: digits.real in the report config)"))
    rows += [("generation time (s)", d["timings"]["generate_s"]), ("part time (s)", d["seconds"])]
    return [
        "<h2>Class-conditional DDPM: generated digits</h2>",
        figure(d["figures"]["grid"], "Rows: digits 0-9; columns: ten noise inputs, shared by every row.", "10x10 digit grid"),
        figure(d["figures"]["reverse"], "The grid's first '0' along the reverse process, from pure noise (left) to the image (right).", "reverse process"),
        key_values(rows),
        "<p>The accuracy score trains a small fixed classifier on the generated images alone and tests it on real images; "
        "the ratio to the same classifier trained on as many real images is near 1 when the samples cover the real variety "
        "and far below 1 when they look alike, however recognisable.</p>",
    ]


def ddim_section(d: dict[str, Any]) -> list[str]:
    rows = [("model", d["source"]), ("DDIM steps", d["steps"]), ("timestep spacing", d.get("spacing", "leading")),
            ("eta grid time (s)", d["eta_grid_s"]), ("interpolation time (s)", d["interpolation_s"])]
    if "mean_mse" in d:
        rows += [("mean MSE against GT (0..255)", d["mean_mse"])] + [(f"MSE {k}", v) for k, v in d["mse"].items()]
    return [
        "<h2>DDIM: eta and interpolation</h2>",
        figure(d["figures"]["eta_grid"], "Each row samples the same four noises (columns) with DDIM at one eta: eta = 0 is the "
               "deterministic sampler, eta = 1 adds as much fresh noise per step as DDPM does; rows share their per-step noise, "
               "so they differ by eta alone.", "eta grid"),
        figure(d["figures"]["interpolation"], "Deterministic DDIM (eta 0) from noises between noise 0 (left) and noise 1 (right): "
               "spherical (slerp) and linear interpolation, alpha = 0.0 ... 1.0. Linear mixes have a smaller norm than real noise, "
               "hence the washed-out middle of the linear row.", "interpolation"),
        key_values(rows),
    ]


def adapt_section(a: dict[str, Any]) -> list[str]:
    parts = ["<h2>Domain adaptation: target accuracy</h2>", markdown_table(a["table_markdown"]),
             "<p>Mean ± standard deviation over seeds of the accuracy on the target domain's held-out validation images "
             "(never trained on). Target labels choose nothing: weights are the last epoch's unless a row says otherwise. "
             'Also as <a href="adaptation_table.csv">CSV</a>.</p>', '<div class="tsne">']
    for fig in a["tsne"]:
        parts.append(figure(fig["class"], f"t-SNE of extractor features, {fig['scenario']}, coloured by class", "t-SNE by class"))
        parts.append(figure(fig["domain"], f"t-SNE of extractor features, {fig['scenario']}, coloured by domain", "t-SNE by domain"))
    parts.append("</div>")
    if a.get("curves"):
        parts.append("<h3>Training curves</h3><div class=\"tsne\">")
        parts += [figure(c["figure"], f"per epoch: {c['run']}", "training curves") for c in a["curves"]]
        parts.append("</div>")
    parts += ["<h3>Settings</h3>", settings_table(a["settings"]),
              key_values([*[(f"time (s): {k}", v) for k, v in a["timings"].items()], ("part time (s)", a["seconds"])])]
    return parts


def render_page(results: dict[str, Any]) -> str:
    parts = [f"<h1>{esc(results['title'])}</h1>",
             f"<p>Device: {esc(results['device'])}; seed {esc(results['seed'])}; total {number(results.get('total_seconds'), 1)} s.</p>"]
    if "data" in results:
        data = results["data"]
        parts += ["<h2>Data</h2>", figure(data["figure"], "A sample of every domain used (rows).", "domain samples"),
                  f"<pre>{esc(data['summary'])}</pre>"]
    if "digits" in results:
        parts += digits_section(results["digits"])
    if "ddim" in results:
        parts += ddim_section(results["ddim"])
    if "adapt" in results:
        parts += adapt_section(results["adapt"])
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(results["title"])}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")
