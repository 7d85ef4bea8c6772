"""Summaries of benchmark runs: the table, ``bench.json`` and the ``bench.png`` chart."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks._variants import REFERENCE, Variant


def summarise(
    runs: Sequence[Mapping[str, Any]],
    workloads: Sequence[str],
    variants: Sequence[Variant],
    workers: int,
    skipped: Mapping[tuple[str, str], Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Summarises the runs: one row per (workload, variant).

    Each row holds the median/min/max records/s over the rounds, the ratio of the median to
    the reference's median, the median first-batch time and the status. The status is
    ``ok`` when at least one round succeeded; otherwise that of the skip (``n/a``,
    ``not installed``) or ``error`` with the last error message.
    """
    rows = []
    for wl in workloads:
        ref = None
        block = []
        for v in variants:
            mine = [r for r in runs if r["workload"] == wl and r["variant"] == v.name]
            ok = [r for r in mine if r["status"] == "ok"]
            row: dict[str, Any] = {
                "workload": wl,
                "variant": v.name,
                "label": v.label(workers),
                "runs": len(mine),
                "runs_ok": len(ok),
            }
            if ok:
                rates = [r["records_per_s"] for r in ok]
                row.update(
                    status="ok",
                    median=statistics.median(rates),
                    min=min(rates),
                    max=max(rates),
                    first_batch_s=statistics.median(r["first_batch_s"] for r in ok),
                    construct_s=statistics.median(r["construct_s"] for r in ok),
                )
                for extra in ("fill", "restore_s"):
                    if all(extra in r for r in ok):
                        row[extra] = statistics.median(r[extra] for r in ok)
                if v.name == REFERENCE:
                    ref = row["median"]
            elif (wl, v.name) in skipped:
                row.update(
                    status=skipped[(wl, v.name)]["status"], error=skipped[(wl, v.name)].get("error")
                )
            else:
                row.update(status="error", error=mine[-1].get("error") if mine else None)
            if len(ok) < len(mine) and ok:
                row["error"] = next(r.get("error") for r in mine if r["status"] != "ok")
            block.append(row)
        for row in block:
            row["vs_reference"] = row["median"] / ref if ref and row.get("status") == "ok" else None
        rows.extend(block)
    return rows


def _fmt_rate(x: float | None) -> str:
    return "" if x is None else f"{x:,.0f}"


def format_table(report: Mapping[str, Any]) -> str:
    """Returns the summary as a fixed-width text table, one block per workload."""
    lines = []
    head = (
        f"{'variant':<22}{'median/s':>11}{'min/s':>11}{'max/s':>11}"
        f"{'vs ref':>8}{'1st batch':>11}  status"
    )
    for wl, info in report["workloads"].items():
        lines.append("")
        lines.append(
            f"{info['title']}  [records = {info['unit']}; n={info['config']['n']},"
            f" {info['batches']} timed batches, {report['meta']['rounds']} rounds]"
        )
        lines.append(head)
        lines.append("-" * len(head))
        for row in report["summary"]:
            if row["workload"] != wl:
                continue
            ratio = row.get("vs_reference")
            status = row["status"]
            if status == "ok" and row["runs_ok"] < row["runs"]:
                status = f"ok ({row['runs'] - row['runs_ok']} failed)"
            elif status == "error" and row.get("error"):
                status = f"error: {str(row['error'])[:60]}"
            if "fill" in row:
                status += f"  fill {row['fill']:.3f}"
            if "restore_s" in row:
                status += f"  restore {1e3 * row['restore_s']:.0f} ms"
            fb = row.get("first_batch_s")
            lines.append(
                f"{row['label']:<22}{_fmt_rate(row.get('median')):>11}"
                f"{_fmt_rate(row.get('min')):>11}{_fmt_rate(row.get('max')):>11}"
                f"{'' if ratio is None else f'{ratio:.2f}x':>8}"
                f"{'' if fb is None else f'{fb:.2f}s':>11}  {status}"
            )
    return "\n".join(lines)


def write(report: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Writes ``bench.json`` and ``bench.png`` under ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js = out / "bench.json"
    js.write_text(json.dumps(report, indent=2, default=str) + "\n")
    png = out / "bench.png"
    draw_chart(report).save(png)
    return [js, png]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_chart(report: Mapping[str, Any]) -> Any:
    """Draws horizontal bars of median records/s with min-max whiskers, per workload.

    Returns:
        A ``PIL.Image``.
    """
    from PIL import Image, ImageDraw

    width, label_w, row_h, pad = 960, 190, 24, 14
    bar_w = width - label_w - 230
    blocks = [
        (wl, info, [r for r in report["summary"] if r["workload"] == wl])
        for wl, info in report["workloads"].items()
    ]
    height = (
        2 * pad + row_h + sum(2 * row_h + len(rows) * row_h + pad for _, _, rows in blocks) + pad
    )
    img = Image.new("RGB", (width, max(height, 60)), "white")
    d = ImageDraw.Draw(img)
    title_font, font = _font(15), _font(13)
    rounds = report["meta"]["rounds"]
    d.text(
        (pad, pad),
        f"feedax benchmarks: median records/s of {rounds} round(s), whiskers min-max, "
        f"ratio to the hand-written jax.jit reference; {report['meta']['cpu_count']} CPUs",
        fill=(90, 90, 90),
        font=font,
    )
    y = pad + row_h + pad // 2
    for _wl, info, rows in blocks:
        d.text(
            (pad, y), f"{info['title']}  (records/s, {info['unit']})", fill="black", font=title_font
        )
        y += int(1.5 * row_h)
        top = max([r.get("max") or 0.0 for r in rows] + [1.0])
        for row in rows:
            d.text((pad, y + 4), row["label"], fill="black", font=font)
            x0 = label_w
            if row["status"] == "ok":
                color = {"reference": (120, 120, 120), "feedax": (31, 119, 180)}.get(
                    row["variant"], (255, 127, 14)
                )
                x1 = x0 + int(bar_w * row["median"] / top)
                d.rectangle([x0, y + 3, max(x1, x0 + 1), y + row_h - 5], fill=color)
                lo = x0 + int(bar_w * row["min"] / top)
                hi = x0 + int(bar_w * row["max"] / top)
                mid = y + row_h // 2 - 1
                d.line([lo, mid, hi, mid], fill="black", width=1)
                for xx in (lo, hi):
                    d.line([xx, mid - 4, xx, mid + 4], fill="black", width=1)
                ratio = row.get("vs_reference")
                text = f"{row['median']:,.0f}/s" + ("" if ratio is None else f"  {ratio:.2f}x")
                d.text((x0 + bar_w + 10, y + 4), text, fill="black", font=font)
            else:
                d.text((x0, y + 4), row["status"], fill=(150, 150, 150), font=font)
            y += row_h
        y += row_h // 2 + pad
    return img
